// Writes ../xmr.json: Monero message-signature vectors made by the real wallet (Debian's `monero` package).
//
//   apt-get install -y monero && cd chains/tests/vectors/gen && npm install && node gen-monero.mjs
//
// One `monero-wallet-rpc --offline` per network (no daemon needed to sign) creates two throwaway wallets and signs
// with the wallet RPC `sign` (SigV2, spend and view keys, base address and a subaddress). 0.18 wallets only *make*
// SigV2, but still *verify* legacy SigV1: the SigV1 cases are therefore signed here (Monero's generate_signature over
// cn_fast_hash(message), with the wallet's own spend/view secret from `query_key`) and every one of them is accepted
// by the wallet RPC `verify` before it is written. Expectations are the reason codes of
// `chains::signature::SignatureError::code()`.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519';
import { keccak_256 } from '@noble/hashes/sha3';

const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
const ENCODED_BLOCK = [0, 2, 3, 5, 6, 7, 9, 10, 11];

/** Monero's block base58: 8-byte blocks, each to 11 characters (a short last block to fewer). */
function b58encode(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i += 8) {
    const block = bytes.subarray(i, i + 8);
    let num = 0n;
    for (const b of block) num = (num << 8n) | BigInt(b);
    let s = '';
    for (let j = 0; j < ENCODED_BLOCK[block.length]; j++) { s = ALPHABET[Number(num % 58n)] + s; num /= 58n; }
    out += s;
  }
  return out;
}
const leToBig = (b) => BigInt('0x' + Buffer.from(b).reverse().toString('hex'));
const bigToLe = (n) => Buffer.from(n.toString(16).padStart(64, '0'), 'hex').reverse();

/** Monero crypto::generate_signature(hash, pub, sec): a Schnorr signature (c, r) with c = H(hash || pub || kG). */
function generateSignature(hash, pubHex, secHex) {
  const s = leToBig(Buffer.from(secHex, 'hex'));
  const pub = Buffer.from(pubHex, 'hex');
  const k = leToBig(randomBytes(64)) % L;
  const R = ed25519.ExtendedPoint.BASE.multiply(k).toRawBytes();
  const c = leToBig(keccak_256(Buffer.concat([hash, pub, R]))) % L;
  const r = (((k - c * s) % L) + L) % L;
  return Buffer.concat([bigToLe(c), bigToLe(r)]);
}
const signV1 = (message, pubHex, secHex) =>
  'SigV1' + b58encode(generateSignature(Buffer.from(keccak_256(Buffer.from(message, 'utf8'))), pubHex, secHex));

async function rpc(port, method, params = {}) {
  const res = await fetch(`http://127.0.0.1:${port}/json_rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: '0', method, params }),
  });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
  return body.result;
}

async function withWalletRpc(networkFlags, port, fn) {
  const dir = mkdtempSync(join(tmpdir(), 'xmr-vectors-'));
  const child = spawn('monero-wallet-rpc', ['--offline', '--disable-rpc-login', '--wallet-dir', dir, '--rpc-bind-ip', '127.0.0.1',
    '--rpc-bind-port', String(port), '--log-file', join(dir, 'rpc.log'), '--non-interactive', ...networkFlags], { stdio: 'ignore' });
  try {
    for (let i = 0; ; i++) {
      try { await rpc(port, 'get_version'); break; } catch (e) {
        if (i > 100) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    return await fn((method, params) => rpc(port, method, params));
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}

const MESSAGES = ['Access event 42 at 1764067200000', 'héllo wörld — 🎟️ ticket', ''];

/** Opens a fresh wallet and returns what the vectors need from it. */
async function wallet(call, name) {
  await call('create_wallet', { filename: name, password: '', language: 'English' });
  const { address } = await call('get_address', { account_index: 0 });
  const sub = await call('create_address', { account_index: 0, label: 'tickets' });
  const spend = (await call('query_key', { key_type: 'spend_key' })).key;
  const view = (await call('query_key', { key_type: 'view_key' })).key;
  const integrated = (await call('make_integrated_address', { payment_id: '1122334455667788' })).integrated_address;
  const pub = (hex) => Buffer.from(ed25519.ExtendedPoint.BASE.multiply(leToBig(Buffer.from(hex, 'hex')) % L).toRawBytes()).toString('hex');
  return { address, subaddress: sub.address, subIndex: sub.address_index, integrated, spend, view, spendPub: pub(spend), viewPub: pub(view) };
}

async function network(netName, flags, port) {
  return withWalletRpc(flags, port, async (call) => {
    const cases = [];
    const b = await wallet(call, 'b');
    const a = await wallet(call, 'a'); // stays open: every `sign` below is A's
    const sign = async (data, type, index = 0) =>
      (await call('sign', { data, signature_type: type, account_index: 0, address_index: index })).signature;
    const verify = (data, address, signature) => call('verify', { data, address, signature });
    const push = async (name, address, message, signature, expect, rpcType) => {
      const v = await verify(message, address, signature);
      if (rpcType) {
        assert.ok(v.good, `${name}: wallet rejects its own vector`);
        assert.equal(v.signature_type, rpcType, name);
      } else {
        assert.ok(!v.good, `${name}: wallet accepts a must-fail vector`);
      }
      cases.push({ name: `${netName}/${name}`, network: netName, address, message, signature, expect });
    };
    const msgs = netName === 'mainnet' ? MESSAGES : MESSAGES.slice(0, 1);
    for (const [i, m] of msgs.entries()) {
      const v2s = await sign(m, 'spend');
      const v2v = await sign(m, 'view');
      assert.ok(v2s.startsWith('SigV2'));
      await push(`v2/spend/msg${i}`, a.address, m, v2s, 'ok', 'spend');
      await push(`v2/view_key_rejected/msg${i}`, a.address, m, v2v, 'view_key_signature', 'view');
      await push(`v2/spend/integrated_address/msg${i}`, a.integrated, m, v2s, 'ok', 'spend');
      await push(`v2/altered_message/msg${i}`, a.address, m + '!', v2s, 'invalid_signature', null);
      await push(`v2/other_key/msg${i}`, b.address, m, v2s, 'invalid_signature', null);
      const s2s = await sign(m, 'spend', a.subIndex);
      const s2v = await sign(m, 'view', a.subIndex);
      await push(`v2/subaddress_spend/msg${i}`, a.subaddress, m, s2s, 'ok', 'spend');
      await push(`v2/subaddress_view_key_rejected/msg${i}`, a.subaddress, m, s2v, 'view_key_signature', 'view');
      await push(`v2/subaddress_sig_for_main_address/msg${i}`, a.address, m, s2s, 'invalid_signature', null);
      const v1s = signV1(m, a.spendPub, a.spend);
      const v1v = signV1(m, a.viewPub, a.view);
      await push(`v1/spend/msg${i}`, a.address, m, v1s, 'ok', 'spend');
      await push(`v1/view_key_rejected/msg${i}`, a.address, m, v1v, 'view_key_signature', 'view');
      await push(`v1/altered_message/msg${i}`, a.address, m + '!', v1s, 'invalid_signature', null);
      await push(`v1/other_key/msg${i}`, b.address, m, v1s, 'invalid_signature', null);
    }
    const m = MESSAGES[0];
    const sig = await sign(m, 'spend');
    const raw = sig.slice(5);
    if (netName === 'mainnet') {
      cases.push({ name: 'malformed/unknown_version', network: netName, address: a.address, message: m, signature: 'SigV3' + raw, expect: 'bad_header' });
      cases.push({ name: 'malformed/no_header', network: netName, address: a.address, message: m, signature: raw, expect: 'bad_header' });
      cases.push({ name: 'malformed/bad_base58', network: netName, address: a.address, message: m, signature: 'SigV2' + '0' + raw.slice(1), expect: 'bad_encoding' });
      cases.push({ name: 'malformed/truncated', network: netName, address: a.address, message: m, signature: 'SigV2' + raw.slice(0, 77), expect: 'bad_length' });
      cases.push({ name: 'malformed/empty', network: netName, address: a.address, message: m, signature: '', expect: 'bad_header' });
      const c = 'SigV2' + b58encode(Buffer.concat([Buffer.alloc(32, 0xff), Buffer.alloc(32, 0x01)]));
      cases.push({ name: 'malformed/c_not_canonical', network: netName, address: a.address, message: m, signature: c, expect: 'invalid_signature' });
      const i = 20;
      const flipped = a.address.slice(0, i) + ALPHABET[(ALPHABET.indexOf(a.address[i]) + 1) % 58] + a.address.slice(i + 1);
      cases.push({ name: 'malformed/address_bad_checksum', network: netName, address: flipped, message: m, signature: sig, expect: 'bad_checksum' });
      cases.push({ name: 'malformed/address_garbage', network: netName, address: 'not-a-monero-address', message: m, signature: sig, expect: 'bad_address' });
      cases.push({ name: 'malformed/address_truncated', network: netName, address: a.address.slice(0, 90), message: m, signature: sig, expect: 'bad_address' });
    } else {
      cases.push({ name: `malformed/${netName}_address_on_mainnet`, network: 'mainnet', address: a.address, message: m, signature: sig, expect: 'bad_address' });
    }
    return cases;
  });
}

const version = execFileSync('monero-wallet-rpc', ['--version']).toString().trim();
const cases = [
  ...(await network('mainnet', [], 18091)),
  ...(await network('stagenet', ['--stagenet'], 18092)),
  ...(await network('testnet', ['--testnet'], 18093)),
];
writeFileSync(new URL('../xmr.json', import.meta.url), JSON.stringify({ chain: 'xmr', generator: version, cases }, null, 2) + '\n');
console.log(`wrote xmr.json (${cases.length} cases)`);

// Writes ../{evm,btc,sol,hive}.json: signature test vectors made with each chain's reference JS library.
//
//   cd chains/tests/vectors/gen && npm install && node gen.mjs
//
// Every case is { name, address, message (UTF-8) | message_hex, signature, expect, [network] } where `expect` is
// "ok" or the reason code `chains::signature::SignatureError::code()` must return. Valid cases are also checked here
// with the library's own verifier, so a vector that the reference library rejects never gets written.
import { writeFileSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';

import { ethers } from 'ethers';
import bitcoinMessage from 'bitcoinjs-message';
import * as bitcoin from 'bitcoinjs-lib';
import { ECPairFactory } from 'ecpair';
import * as ecc from 'tiny-secp256k1';
import { Signer as Bip322Signer, Verifier as Bip322Verifier } from 'bip322-js';
import nacl from 'tweetnacl';
import bs58 from 'bs58';
import { PrivateKey, cryptoUtils, Signature as HiveSignature } from '@hiveio/dhive';

const version = (p) => `${p} ${JSON.parse(readFileSync(new URL(`node_modules/${p}/package.json`, import.meta.url))).version}`;
const OUT = new URL('../', import.meta.url);
const sha256 = (b) => createHash('sha256').update(b).digest();
/** Deterministic 32-byte secret for key number `n` of a chain. */
const secret = (chain, n) => sha256(Buffer.from(`chains-vector-key/${chain}/${n}`));
const write = (file, obj) => writeFileSync(new URL(file, OUT), JSON.stringify(obj, null, 2) + '\n');

const MESSAGES = [
  'Access event 42 at 1764067200000',
  'héllo wörld — 🎟️ ticket',
  '',
];

/** Replaces the character at `i` with another one of the same alphabet (for checksum-breaking cases). */
function flipChar(s, i, alphabet) {
  const c = s[i];
  const j = (alphabet.indexOf(c) + 1) % alphabet.length;
  return s.slice(0, i) + alphabet[j] + s.slice(i + 1);
}

// ---------------------------------------------------------------------------------------------------------------
// EVM: EIP-191 personal_sign (ethers), v in 27/28, 0/1 and EIP-155 forms; EIP-4361 messages.
function evm() {
  const cases = [];
  const w1 = new ethers.Wallet('0x' + secret('evm', 1).toString('hex'));
  const w2 = new ethers.Wallet('0x' + secret('evm', 2).toString('hex'));
  const sign = (w, m) => w.signingKey.sign(ethers.hashMessage(m));
  const withV = (sig, vBytes) => ethers.concat([sig.r, sig.s, vBytes]);
  for (const [i, m] of MESSAGES.entries()) {
    const sig = sign(w1, m);
    const serialized = sig.serialized; // v = 27/28
    assert.equal(ethers.verifyMessage(m, serialized), w1.address);
    cases.push({ name: `v27_28/msg${i}`, address: w1.address, message: m, signature: serialized, expect: 'ok' });
    const v01 = withV(sig, ethers.toBeHex(sig.yParity, 1));
    cases.push({ name: `v0_1/msg${i}`, address: w1.address, message: m, signature: v01, expect: 'ok' });
    cases.push({ name: `v0_1/altered_message/msg${i}`, address: w1.address, message: m + '!', signature: v01, expect: 'wrong_signer' });
    cases.push({ name: `v0_1/other_key/msg${i}`, address: w2.address, message: m, signature: v01, expect: 'wrong_signer' });
    for (const chainId of [1, 56, 137]) {
      const v = BigInt(chainId) * 2n + 35n + BigInt(sig.yParity);
      const eip155 = withV(sig, ethers.toBeArray(v));
      cases.push({ name: `eip155_chain${chainId}/msg${i}`, address: w1.address, message: m, signature: eip155, expect: 'ok' });
      cases.push({ name: `eip155_chain${chainId}/altered_message/msg${i}`, address: w1.address, message: m + '!', signature: eip155, expect: 'wrong_signer' });
      cases.push({ name: `eip155_chain${chainId}/other_key/msg${i}`, address: w2.address, message: m, signature: eip155, expect: 'wrong_signer' });
    }
    cases.push({ name: `altered_message/msg${i}`, address: w1.address, message: m + '!', signature: serialized, expect: 'wrong_signer' });
    cases.push({ name: `other_key/msg${i}`, address: w2.address, message: m, signature: serialized, expect: 'wrong_signer' });
  }
  const m = MESSAGES[0];
  const sig = sign(w1, m).serialized;
  const lower = w1.address.toLowerCase();
  const upper = '0x' + w1.address.slice(2).toUpperCase();
  cases.push({ name: 'address_lowercase', address: lower, message: m, signature: sig, expect: 'ok' });
  cases.push({ name: 'address_uppercase', address: upper, message: m, signature: sig, expect: 'ok' });
  cases.push({ name: 'address_no_0x_prefix', address: w1.address.slice(2), message: m, signature: sig.slice(2), expect: 'ok' });
  // Break EIP-55: flip the case of one letter of a mixed-case address.
  const idx = [...w1.address].findIndex((c, k) => k > 1 && /[a-fA-F]/.test(c));
  const c = w1.address[idx];
  const badCase = w1.address.slice(0, idx) + (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) + w1.address.slice(idx + 1);
  cases.push({ name: 'address_bad_eip55_checksum', address: badCase, message: m, signature: sig, expect: 'bad_checksum' });
  cases.push({ name: 'address_short', address: w1.address.slice(0, 40), message: m, signature: sig, expect: 'bad_address' });
  cases.push({ name: 'address_not_hex', address: '0x' + 'zz' + lower.slice(4), message: m, signature: sig, expect: 'bad_address' });
  cases.push({ name: 'signature_not_hex', address: w1.address, message: m, signature: '0x' + 'g'.repeat(130), expect: 'bad_encoding' });
  cases.push({ name: 'signature_short', address: w1.address, message: m, signature: sig.slice(0, 128), expect: 'bad_length' });
  cases.push({ name: 'signature_empty', address: w1.address, message: m, signature: '', expect: 'bad_length' });
  cases.push({ name: 'signature_v29', address: w1.address, message: m, signature: sig.slice(0, 130) + '1d', expect: 'bad_header' });
  cases.push({ name: 'signature_v2', address: w1.address, message: m, signature: sig.slice(0, 130) + '02', expect: 'bad_header' });
  cases.push({ name: 'signature_r_zero', address: w1.address, message: m, signature: '0x' + '00'.repeat(32) + sig.slice(66), expect: 'invalid_signature' });

  // EIP-4361 (Sign-In with Ethereum). The verifier parses it and requires its address to be the signer's.
  const siwe = (address) => [
    `tickets.example.com wants you to sign in with your Ethereum account:`,
    address,
    '',
    'Sign in to access event 42.',
    '',
    'URI: https://tickets.example.com/events/42',
    'Version: 1',
    'Chain ID: 137',
    'Nonce: 4mXqk9Tz2LrVb8NcWp3Ys7Ha',
    'Issued At: 2026-11-25T10:00:00.000Z',
    'Expiration Time: 2026-11-25T10:05:00.000Z',
    'Request ID: 42',
  ].join('\n');
  const sm = siwe(w1.address);
  cases.push({ name: 'siwe/valid', address: w1.address, message: sm, signature: sign(w1, sm).serialized, expect: 'ok', sign_in: { domain: 'tickets.example.com', nonce: '4mXqk9Tz2LrVb8NcWp3Ys7Ha', issued_at: '2026-11-25T10:00:00.000Z', expiration_time: '2026-11-25T10:05:00.000Z', chain_id: '137' } });
  const sm2 = siwe(w2.address);
  cases.push({ name: 'siwe/address_in_message_is_not_signer', address: w1.address, message: sm2, signature: sign(w1, sm2).serialized, expect: 'wrong_signer' });
  return { chain: 'evm', generator: `${version('ethers')}`, cases };
}

// ---------------------------------------------------------------------------------------------------------------
// Bitcoin: BIP-137 (bitcoinjs-message) for every header range, Electrum-style segwit, BIP-322 simple (bip322-js).
function btc() {
  const ECPair = ECPairFactory(ecc);
  bitcoin.initEccLib(ecc);
  const cases = [];
  const NETS = { mainnet: bitcoin.networks.bitcoin, testnet: bitcoin.networks.testnet, regtest: bitcoin.networks.regtest };
  const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
  const BECH = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';

  for (const [netName, network] of Object.entries(NETS)) {
    const k1 = ECPair.fromPrivateKey(secret('btc', 1), { network });
    const k1u = ECPair.fromPrivateKey(secret('btc', 1), { network, compressed: false });
    const k2 = ECPair.fromPrivateKey(secret('btc', 2), { network });
    const addrs = (pubkey) => ({
      p2pkh: bitcoin.payments.p2pkh({ pubkey, network }).address,
      p2wpkh: bitcoin.payments.p2wpkh({ pubkey, network }).address,
      p2sh_p2wpkh: bitcoin.payments.p2sh({ redeem: bitcoin.payments.p2wpkh({ pubkey, network }), network }).address,
    });
    const a1 = addrs(k1.publicKey);
    const a1u = bitcoin.payments.p2pkh({ pubkey: k1u.publicKey, network }).address;
    const a2 = addrs(k2.publicKey);
    const prefix = network.messagePrefix;
    const sign = (key, m, compressed, segwitType) =>
      bitcoinMessage.sign(m, key.privateKey, compressed, prefix, segwitType ? { segwitType } : undefined).toString('base64');
    const check = (m, addr, sig, electrum = false) => assert.ok(bitcoinMessage.verify(m, addr, sig, prefix, electrum), `${addr} ${sig}`);
    const msgs = netName === 'mainnet' ? MESSAGES : MESSAGES.slice(0, 1);
    for (const [i, m] of msgs.entries()) {
      const tag = `${netName}/msg${i}`;
      const kinds = [
        ['uncompressed_p2pkh_27_30', a1u, sign(k1u, m, false), false],
        ['compressed_p2pkh_31_34', a1.p2pkh, sign(k1, m, true), false],
        ['electrum_p2wpkh_31_34', a1.p2wpkh, sign(k1, m, true), true],
        ['electrum_p2sh_p2wpkh_31_34', a1.p2sh_p2wpkh, sign(k1, m, true), true],
        ['p2sh_p2wpkh_35_38', a1.p2sh_p2wpkh, sign(k1, m, true, 'p2sh(p2wpkh)'), false],
        ['p2wpkh_39_42', a1.p2wpkh, sign(k1, m, true, 'p2wpkh'), false],
      ];
      for (const [kind, addr, sig, electrum] of kinds) {
        check(m, addr, sig, electrum);
        const header = Buffer.from(sig, 'base64')[0];
        cases.push({ name: `bip137/${kind}/${tag}`, network: netName, address: addr, message: m, signature: sig, header, expect: 'ok' });
        cases.push({ name: `bip137/${kind}/altered_message/${tag}`, network: netName, address: addr, message: m + ' ', signature: sig, expect: 'wrong_signer' });
      }
      // Other key: k2's addresses with k1's signatures.
      cases.push({ name: `bip137/other_key_p2pkh/${tag}`, network: netName, address: a2.p2pkh, message: m, signature: sign(k1, m, true), expect: 'wrong_signer' });
      cases.push({ name: `bip137/other_key_p2wpkh/${tag}`, network: netName, address: a2.p2wpkh, message: m, signature: sign(k1, m, true, 'p2wpkh'), expect: 'wrong_signer' });
      cases.push({ name: `bip137/other_key_p2sh/${tag}`, network: netName, address: a2.p2sh_p2wpkh, message: m, signature: sign(k1, m, true, 'p2sh(p2wpkh)'), expect: 'wrong_signer' });
      // An uncompressed key's signature does not prove a segwit address (those need a compressed key).
      cases.push({ name: `bip137/uncompressed_header_for_segwit/${tag}`, network: netName, address: a1.p2wpkh, message: m, signature: sign(k1u, m, false), expect: 'wrong_signer' });
    }

    // BIP-322 simple (P2WPKH and P2TR).
    const p2tr = bitcoin.payments.p2tr({ internalPubkey: k1.publicKey.subarray(1, 33), network }).address;
    const p2tr2 = bitcoin.payments.p2tr({ internalPubkey: k2.publicKey.subarray(1, 33), network }).address;
    for (const [i, m] of msgs.entries()) {
      const tag = `${netName}/msg${i}`;
      for (const [kind, addr, other] of [['p2wpkh', a1.p2wpkh, a2.p2wpkh], ['p2tr', p2tr, p2tr2]]) {
        const sig = Bip322Signer.sign(k1.toWIF(), addr, m, network);
        const sigStr = typeof sig === 'string' ? sig : sig.toString('base64');
        assert.ok(Bip322Verifier.verifySignature(addr, m, sigStr), `bip322 ${kind} ${tag}`);
        cases.push({ name: `bip322/${kind}/${tag}`, network: netName, address: addr, message: m, signature: sigStr, expect: 'ok' });
        cases.push({ name: `bip322/${kind}/altered_message/${tag}`, network: netName, address: addr, message: m + '.', signature: sigStr, expect: 'invalid_signature' });
        cases.push({ name: `bip322/${kind}/other_key/${tag}`, network: netName, address: other, message: m, signature: sigStr, expect: kind === 'p2wpkh' ? 'wrong_signer' : 'invalid_signature' });
      }
    }

    if (netName === 'mainnet') {
      // Header coverage: the cases above may all have recovery id 0; find keys whose signature has id 1 so that
      // 28, 32, 36 and 40 are exercised too.
      const want = new Map([[28, null], [32, null], [36, null], [40, null]]);
      for (let n = 3; n < 200 && [...want.values()].some((v) => v === null); n++) {
        const m = MESSAGES[0];
        const k = ECPair.fromPrivateKey(secret('btc', n), { network });
        const ku = ECPair.fromPrivateKey(secret('btc', n), { network, compressed: false });
        const a = addrs(k.publicKey);
        for (const [addr, sig] of [
          [bitcoin.payments.p2pkh({ pubkey: ku.publicKey, network }).address, sign(ku, m, false)],
          [a.p2pkh, sign(k, m, true)],
          [a.p2sh_p2wpkh, sign(k, m, true, 'p2sh(p2wpkh)')],
          [a.p2wpkh, sign(k, m, true, 'p2wpkh')],
        ]) {
          const header = Buffer.from(sig, 'base64')[0];
          if (want.get(header) === null) {
            check(m, addr, sig);
            want.set(header, sig);
            cases.push({ name: `bip137/header_${header}/${netName}`, network: netName, address: addr, message: m, signature: sig, header, expect: 'ok' });
          }
        }
      }
      const m = MESSAGES[0];
      const sig = sign(k1, m, true);
      const raw = Buffer.from(sig, 'base64');
      const withHeader = (h) => Buffer.concat([Buffer.from([h]), raw.subarray(1)]).toString('base64');
      cases.push({ name: 'malformed/header_26', network: netName, address: a1.p2pkh, message: m, signature: withHeader(26), expect: 'bad_header' });
      cases.push({ name: 'malformed/header_43', network: netName, address: a1.p2pkh, message: m, signature: withHeader(43), expect: 'bad_header' });
      cases.push({ name: 'malformed/not_base64', network: netName, address: a1.p2pkh, message: m, signature: '!!' + sig.slice(2), expect: 'bad_encoding' });
      cases.push({ name: 'malformed/empty_signature', network: netName, address: a1.p2pkh, message: m, signature: '', expect: 'bad_length' });
      cases.push({ name: 'malformed/truncated_witness', network: netName, address: a1.p2wpkh, message: m, signature: Buffer.from(Bip322Signer.sign(k1.toWIF(), a1.p2wpkh, m), 'base64').subarray(0, 40).toString('base64'), expect: 'bad_encoding' });
      cases.push({ name: 'malformed/r_zero', network: netName, address: a1.p2pkh, message: m, signature: Buffer.concat([raw.subarray(0, 1), Buffer.alloc(32), raw.subarray(33)]).toString('base64'), expect: 'invalid_signature' });
      cases.push({ name: 'malformed/p2pkh_bad_checksum', network: netName, address: flipChar(a1.p2pkh, 10, B58), message: m, signature: sig, expect: 'bad_checksum' });
      cases.push({ name: 'malformed/p2wpkh_bad_checksum', network: netName, address: flipChar(a1.p2wpkh, 10, BECH), message: m, signature: sign(k1, m, true, 'p2wpkh'), expect: 'bad_checksum' });
      cases.push({ name: 'malformed/address_garbage', network: netName, address: 'not-an-address', message: m, signature: sig, expect: 'bad_address' });
      // A testnet address while verifying for mainnet.
      const t = bitcoin.payments.p2pkh({ pubkey: k1.publicKey, network: bitcoin.networks.testnet }).address;
      cases.push({ name: 'malformed/testnet_address_on_mainnet', network: 'mainnet', address: t, message: m, signature: sig, expect: 'bad_address' });
      // BIP-322 for a P2PKH address is not "simple": such wallets sign with BIP-137.
      cases.push({ name: 'bip322/p2pkh_witness_unsupported', network: netName, address: a1.p2pkh, message: m, signature: Bip322Signer.sign(k1.toWIF(), a1.p2wpkh, m), expect: 'unsupported' });
    }
  }
  return { chain: 'btc', generator: `${version('bitcoinjs-message')}, ${version('bitcoinjs-lib')}, ${version('bip322-js')}`, cases };
}

// ---------------------------------------------------------------------------------------------------------------
// Solana: ed25519 over the raw message (tweetnacl), signatures in base58, base64 and hex; Sign-In with Solana.
function sol() {
  const cases = [];
  const k1 = nacl.sign.keyPair.fromSeed(secret('sol', 1));
  const k2 = nacl.sign.keyPair.fromSeed(secret('sol', 2));
  const addr1 = bs58.encode(k1.publicKey);
  const addr2 = bs58.encode(k2.publicKey);
  const siws = [
    'tickets.example.com wants you to sign in with your Solana account:',
    addr1,
    '',
    'Sign in to access event 42.',
    '',
    'URI: https://tickets.example.com/events/42',
    'Version: 1',
    'Chain ID: mainnet',
    'Nonce: 9fKq2LrVb8NcWp3Ys7HaT4mX',
    'Issued At: 2026-11-25T10:00:00.000Z',
    'Expiration Time: 2026-11-25T10:05:00.000Z',
    'Request ID: 42',
  ].join('\n');
  for (const [i, m] of [...MESSAGES, siws].entries()) {
    const bytes = Buffer.from(m, 'utf8');
    const sig = nacl.sign.detached(bytes, k1.secretKey);
    assert.ok(nacl.sign.detached.verify(bytes, sig, k1.publicKey));
    const extra = i === 3 ? { sign_in: { domain: 'tickets.example.com', nonce: '9fKq2LrVb8NcWp3Ys7HaT4mX', issued_at: '2026-11-25T10:00:00.000Z', expiration_time: '2026-11-25T10:05:00.000Z', chain_id: 'mainnet' } } : {};
    cases.push({ name: `base58/msg${i}`, address: addr1, message: m, signature: bs58.encode(sig), expect: 'ok', ...extra });
    cases.push({ name: `base64/msg${i}`, address: addr1, message: m, signature: Buffer.from(sig).toString('base64'), expect: 'ok' });
    cases.push({ name: `hex/msg${i}`, address: addr1, message: m, signature: Buffer.from(sig).toString('hex'), expect: 'ok' });
    cases.push({ name: `altered_message/msg${i}`, address: addr1, message: m + 'x', signature: bs58.encode(sig), expect: 'invalid_signature' });
    cases.push({ name: `other_key/msg${i}`, address: addr2, message: m, signature: bs58.encode(sig), expect: 'invalid_signature' });
  }
  // Binary (non-UTF-8) message bytes.
  const bin = Buffer.from([0xff, 0x00, 0xfe, 0x80]);
  cases.push({ name: 'binary_message', address: addr1, message_hex: bin.toString('hex'), signature: bs58.encode(nacl.sign.detached(bin, k1.secretKey)), expect: 'ok' });
  const sig = nacl.sign.detached(Buffer.from(MESSAGES[0]), k1.secretKey);
  const m = MESSAGES[0];
  cases.push({ name: 'malformed/signature_63_bytes', address: addr1, message: m, signature: bs58.encode(sig.subarray(0, 63)), expect: 'bad_length' });
  cases.push({ name: 'malformed/signature_bad_chars', address: addr1, message: m, signature: '0OIl' + bs58.encode(sig).slice(4), expect: 'bad_encoding' });
  cases.push({ name: 'malformed/signature_empty', address: addr1, message: m, signature: '', expect: 'bad_length' });
  cases.push({ name: 'malformed/address_31_bytes', address: bs58.encode(k1.publicKey.subarray(0, 31)), message: m, signature: bs58.encode(sig), expect: 'bad_address' });
  cases.push({ name: 'malformed/address_bad_chars', address: '0' + addr1.slice(1), message: m, signature: bs58.encode(sig), expect: 'bad_address' });
  // s >= L (non-canonical scalar) must be rejected, not reduced.
  const bad = Buffer.from(sig); bad.fill(0xff, 32, 64);
  cases.push({ name: 'malformed/s_not_canonical', address: addr1, message: m, signature: bs58.encode(bad), expect: 'invalid_signature' });
  return { chain: 'sol', generator: `${version('tweetnacl')}, ${version('bs58')}`, cases };
}

// ---------------------------------------------------------------------------------------------------------------
// Hive: compact secp256k1 over sha256(message), as Hive Keychain's signBuffer makes with dhive.
function hive() {
  const cases = [];
  const N = BigInt('0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141');
  const role = (acct, r) => PrivateKey.fromLogin(acct, `pw-${acct}-vectors`, r);
  const accounts = {};
  for (const acct of ['alice.tickets', 'bob-42']) {
    const keys = Object.fromEntries(['owner', 'active', 'posting', 'memo'].map((r) => [r, role(acct, r)]));
    accounts[acct] = { owner: [keys.owner.createPublic().toString()], active: [keys.active.createPublic().toString()], posting: [keys.posting.createPublic().toString()], memo: keys.memo.createPublic().toString(), keys };
  }
  const alice = accounts['alice.tickets'].keys;
  const bob = accounts['bob-42'].keys;
  const sign = (key, m) => key.sign(cryptoUtils.sha256(m)).toString();
  for (const [i, m] of MESSAGES.entries()) {
    const sig = sign(alice.posting, m);
    const pub = alice.posting.createPublic().toString();
    assert.equal(HiveSignature.fromString(sig).recover(cryptoUtils.sha256(m)).toString(), pub);
    cases.push({ name: `pubkey/header_31_34/msg${i}`, address: pub, message: m, signature: sig, expect: 'ok' });
    const raw = Buffer.from(sig, 'hex');
    const h27 = Buffer.from(raw); h27[0] -= 4;
    cases.push({ name: `pubkey/header_27_30/msg${i}`, address: pub, message: m, signature: h27.toString('hex'), expect: 'ok' });
    // The same signature with s replaced by n - s (and the recovery id flipped): must be normalised, not rejected.
    const s = BigInt('0x' + raw.subarray(33).toString('hex'));
    const hi = Buffer.from(raw); hi[0] = 31 + ((raw[0] - 31) ^ 1);
    Buffer.from((N - s).toString(16).padStart(64, '0'), 'hex').copy(hi, 33);
    cases.push({ name: `pubkey/high_s/msg${i}`, address: pub, message: m, signature: hi.toString('hex'), expect: 'ok' });
    cases.push({ name: `pubkey/header_27_30/altered_message/msg${i}`, address: pub, message: m + '?', signature: h27.toString('hex'), expect: 'wrong_signer' });
    cases.push({ name: `pubkey/header_27_30/other_key/msg${i}`, address: bob.posting.createPublic().toString(), message: m, signature: h27.toString('hex'), expect: 'wrong_signer' });
    cases.push({ name: `pubkey/high_s/altered_message/msg${i}`, address: pub, message: m + '?', signature: hi.toString('hex'), expect: 'wrong_signer' });
    cases.push({ name: `pubkey/altered_message/msg${i}`, address: pub, message: m + '?', signature: sig, expect: 'wrong_signer' });
    cases.push({ name: `pubkey/other_key/msg${i}`, address: bob.posting.createPublic().toString(), message: m, signature: sig, expect: 'wrong_signer' });
    // Account names: the key must be one of the account's posting or active keys.
    cases.push({ name: `account/posting/msg${i}`, address: 'alice.tickets', message: m, signature: sig, expect: 'ok' });
    cases.push({ name: `account/active/msg${i}`, address: 'alice.tickets', message: m, signature: sign(alice.active, m), expect: 'ok' });
    cases.push({ name: `account/owner_key_rejected/msg${i}`, address: 'alice.tickets', message: m, signature: sign(alice.owner, m), expect: 'wrong_signer' });
    cases.push({ name: `account/memo_key_rejected/msg${i}`, address: 'alice.tickets', message: m, signature: sign(alice.memo, m), expect: 'wrong_signer' });
    cases.push({ name: `account/other_account/msg${i}`, address: 'bob-42', message: m, signature: sig, expect: 'wrong_signer' });
    cases.push({ name: `account/altered_message/msg${i}`, address: 'alice.tickets', message: m + '?', signature: sig, expect: 'wrong_signer' });
  }
  const m = MESSAGES[0];
  const sig = sign(alice.posting, m);
  const pub = alice.posting.createPublic().toString();
  cases.push({ name: 'account/unknown_account', address: 'carol', message: m, signature: sig, expect: 'unknown_account' });
  cases.push({ name: 'malformed/account_name_invalid', address: 'Alice!', message: m, signature: sig, expect: 'bad_address' });
  cases.push({ name: 'malformed/signature_not_hex', address: pub, message: m, signature: 'zz' + sig.slice(2), expect: 'bad_encoding' });
  cases.push({ name: 'malformed/signature_64_bytes', address: pub, message: m, signature: sig.slice(2), expect: 'bad_length' });
  cases.push({ name: 'malformed/header_35', address: pub, message: m, signature: '23' + sig.slice(2), expect: 'bad_header' });
  cases.push({ name: 'malformed/header_26', address: pub, message: m, signature: '1a' + sig.slice(2), expect: 'bad_header' });
  cases.push({ name: 'malformed/pubkey_bad_checksum', address: flipChar(pub, pub.length - 1, '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'), message: m, signature: sig, expect: 'bad_checksum' });
  cases.push({ name: 'malformed/pubkey_bad_prefix', address: 'XYZ' + pub.slice(3), message: m, signature: sig, expect: 'bad_address' });
  cases.push({ name: 'malformed/pubkey_truncated', address: pub.slice(0, 20), message: m, signature: sig, expect: 'bad_address' });
  const accountsOut = Object.fromEntries(Object.entries(accounts).map(([k, v]) => [k, { owner: v.owner, active: v.active, posting: v.posting, memo: v.memo }]));
  return { chain: 'hive', generator: `${version('@hiveio/dhive')}`, accounts: accountsOut, cases };
}

write('evm.json', evm());
write('btc.json', btc());
write('sol.json', sol());
write('hive.json', hive());
console.log('wrote evm.json btc.json sol.json hive.json');

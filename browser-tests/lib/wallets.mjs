// Test wallets with real keys: an EIP-1193 provider whose secp256k1 key signs in node (personal_sign, EIP-191),
// and a Hive Keychain (requestSignBuffer) signing with a real posting key. A page gets them with
// `page.addInitScript(EIP1193)` / `KEYCHAIN` after the context exposes `__walletAddress`, `__walletSign` and
// `__hiveSign` (see exposeWallets).

import * as secp from "@noble/secp256k1";
import { hmac } from "@noble/hashes/hmac";
import { sha256 } from "@noble/hashes/sha256";
import { keccak_256 } from "@noble/hashes/sha3";
import { bytesToHex, concatBytes, hexToBytes, utf8ToBytes } from "@noble/hashes/utils";

secp.etc.hmacSha256Sync = (key, ...messages) => hmac(sha256, key, secp.etc.concatBytes(...messages));

/** An Ethereum key signing as `personal_sign` does (EIP-191). */
export function evmKey(keyHex) {
  const secret = hexToBytes(keyHex);
  const address = "0x" + bytesToHex(keccak_256(secp.getPublicKey(secret, false).slice(1)).slice(-20));
  const sign = (hexMessage) => {
    const message = hexToBytes(hexMessage.replace(/^0x/, ""));
    const digest = keccak_256(concatBytes(utf8ToBytes(`\x19Ethereum Signed Message:\n${message.length}`), message));
    const s = secp.sign(digest, secret);
    return "0x" + s.toCompactHex() + (27 + s.recovery).toString(16);
  };
  return { address, sign };
}

/** A Hive posting key signing as Keychain's signBuffer does: sha256 of the text, header 31 + recovery id, hex. */
export function hiveKey(keyHex) {
  const secret = hexToBytes(keyHex);
  return (text) => {
    const s = secp.sign(sha256(utf8ToBytes(text)), secret);
    return (31 + s.recovery).toString(16) + s.toCompactHex();
  };
}

export const EIP1193 = `
  window.ethereum = {
    isTestWallet: true,
    async request({ method, params }) {
      const address = await window.__walletAddress();
      if (method === "eth_requestAccounts" || method === "eth_accounts") return [address];
      if (method === "personal_sign") {
        if (String(params[1]).toLowerCase() !== address.toLowerCase()) throw Object.assign(new Error("unknown account"), { code: 4100 });
        return window.__walletSign(params[0]);
      }
      throw Object.assign(new Error("unsupported " + method), { code: 4200 });
    },
  };
`;

export const KEYCHAIN = `
  window.hive_keychain = {
    requestHandshake(cb) { cb(); },
    requestSignBuffer(account, message, keyType, cb) {
      window.__hiveSign(account, message, keyType).then(
        (result) => cb({ success: true, result, data: { username: account, message, method: keyType } }),
        (e) => cb({ success: false, error: String(e), message: String(e) }));
    },
  };
`;

/** Gives `context`'s pages the wallet functions the init scripts call: an EVM key, and a Hive key for `account`. */
export async function exposeWallets(context, { walletKey, hiveKeyHex, account }) {
  const wallet = walletKey ? evmKey(walletKey) : null;
  const signHive = hiveKeyHex ? hiveKey(hiveKeyHex) : null;
  if (wallet) {
    await context.exposeFunction("__walletAddress", () => wallet.address);
    await context.exposeFunction("__walletSign", (hex) => wallet.sign(hex));
  }
  if (signHive) {
    await context.exposeFunction("__hiveSign", (name, text, keyType) => {
      if (name !== account || keyType !== "Posting") throw new Error(`no ${keyType} key for ${name}`);
      return signHive(text);
    });
  }
  return wallet;
}

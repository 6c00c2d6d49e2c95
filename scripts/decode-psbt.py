#!/usr/bin/env python3
"""Decodes a payout PSBT (`gateway admin payouts --format psbt`, the `psbt` field, saved to a file) with an
independent implementation (embit: `pip install embit`): inputs with their key origins, outputs (the change marked),
the fee, the global xpub. With --sign-test-mnemonic it also signs with BIP-84's test mnemonic (`abandon ... about`,
the account of the tests' zpub), showing that a wallet holding the seed signs it as it is.

Usage: scripts/decode-psbt.py FILE [--sign-test-mnemonic]
"""
import sys
from embit.psbt import PSBT
from embit import bip39, bip32
from embit.networks import NETWORKS
from embit.script import address_to_scriptpubkey

text = open(sys.argv[1]).read().strip()
psbt = PSBT.from_string(text)
net = NETWORKS["main"]
print("version", psbt.tx.version, "locktime", psbt.tx.locktime)
for i, inp in enumerate(psbt.inputs):
    print(f"input {i}: {inp.txid.hex()}:{inp.vout} value={inp.witness_utxo.value} sat script={inp.witness_utxo.script_pubkey.address(net)}")
    for pub, der in inp.bip32_derivations.items():
        print(f"   key {pub.sec().hex()} origin [{der.fingerprint.hex()}/{bip32.path_to_str(der.derivation)[2:]}]")
total_out = 0
for i, out in enumerate(psbt.outputs):
    total_out += out.value
    mine = " (change: " + ", ".join(f"[{d.fingerprint.hex()}/{bip32.path_to_str(d.derivation)[2:]}]" for d in out.bip32_derivations.values()) + ")" if out.bip32_derivations else ""
    print(f"output {i}: {out.value} sat to {out.script_pubkey.address(net)}{mine}")
total_in = sum(inp.witness_utxo.value for inp in psbt.inputs)
print("fee", total_in - total_out, "sat")
for xpub, der in psbt.xpubs.items():
    print("global xpub", xpub.to_base58(), f"[{der.fingerprint.hex()}/{bip32.path_to_str(der.derivation)[2:]}]")
if "--sign-test-mnemonic" not in sys.argv:
    sys.exit(0)
# Sign with the BIP-84 test mnemonic, as a wallet holding the seed would.
seed = bip39.mnemonic_to_seed("abandon " * 11 + "about")
root = bip32.HDKey.from_seed(seed)
print("master fingerprint", root.my_fingerprint.hex())
signed = psbt.sign_with(root)
print("signatures made:", signed, "of", len(psbt.inputs), "inputs")

#!/usr/bin/env python3
"""The issue's baseline for `cargo bench --bench media`: the simplest script a user would write
with pyweworkfinance (the PyPI wrapper of the vendor SDK), following its README: pycryptodome's
PKCS#1 v1.5 for the random keys, one corp after the other, every record first, then every media
file with the chunk loop into a file. No verification, no fsync, no database, no transcoding.
The package's own INFO logging stays on, as a user gets it (the bench sends stdout to /dev/null).
One change from the README's calls: messages with raw control characters are parsed (below).

    baseline.py JOB.json

JOB.json: {"library": path, "proxy": url or "", "out": dir,
           "corps": [{"corpid": str, "secret": str}], "keys": {"1": pem path, ...}}
The result is one JSON line on stderr, prefixed "BASELINE ": seconds of the whole job (timed
from the first SDK instance, imports and key parsing excluded), seconds of the media phases,
the CPU seconds of the whole process (user + system), and every file written with its sdkfileid.
"""
import json
import resource
import sys
import time
import types
from base64 import b64decode
from pathlib import Path

from Crypto.Cipher import PKCS1_v1_5
from Crypto.PublicKey import RSA
import pyweworkfinance.main
from pyweworkfinance import WeWorkFinance

# pyweworkfinance's decrypt_data parses the message with a strict json.loads, which stops the
# script at the first message holding a raw control character (WeCom sends such messages; so does
# the emulator). Like a user after that first crash, the script relaxes it.
pyweworkfinance.main.json = types.SimpleNamespace(loads=lambda s: json.loads(s, strict=False))

EXT = {"image": "jpg", "voice": "amr", "video": "mp4", "emotion": "gif"}


def main():
    job = json.loads(Path(sys.argv[1]).read_text())
    ciphers = {int(v): PKCS1_v1_5.new(RSA.import_key(Path(p).read_text())) for v, p in job["keys"].items()}
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    proxy = job["proxy"]
    files, media_secs = [], 0.0
    started = time.monotonic()
    for corp in job["corps"]:
        sdk = WeWorkFinance(corp["corpid"], corp["secret"], dll_path=job["library"], default_timeout=10)
        media, seq = [], 0
        while True:
            page = sdk.get_chat_data(seq=seq, limit=1000, proxy=proxy)
            if not page.chatdata:
                break
            for chat in page.chatdata:
                key = ciphers[chat.publickey_ver].decrypt(b64decode(chat.encrypt_random_key), None).decode()
                msg = sdk.decrypt_data(encrypt_key=key, encrypt_msg=chat.encrypt_chat_msg)
                kind = msg.get("msgtype")
                if kind in ("image", "voice", "video", "file", "emotion"):
                    body = msg[kind]
                    ext = body.get("fileext") or EXT.get(kind, "bin")
                    media.append((body["sdkfileid"], f"{corp['corpid']}-{msg['msgid']}.{ext}"))
                seq = max(seq, chat.seq)
        t = time.monotonic()
        for sdkfileid, name in media:
            data, index_buf = b"", None
            while True:
                r = sdk.get_media_data(sdk_fileid=sdkfileid, index_buf=index_buf, proxy=proxy)
                data += r.data
                index_buf = r.outindexbuf
                if r.is_finish:
                    break
            (out / name).write_bytes(data)
            files.append([sdkfileid, str(out / name)])
        media_secs += time.monotonic() - t
    secs = time.monotonic() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    print("BASELINE " + json.dumps({"secs": secs, "media_secs": media_secs, "cpu": cpu, "files": files}), file=sys.stderr)


if __name__ == "__main__":
    main()

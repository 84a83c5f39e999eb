#!/usr/bin/python3
"""Evaluates SPF cases with pyspf (Debian python3-spf) for the differential test.

Reads one JSON object a line on stdin:
    {"id": "...", "server": "127.0.0.1:PORT", "scope": "mfrom" | "helo",
     "ip": "...", "sender": "...", "helo": "...", "receiver": "..."}
and writes one a line on stdout, in the same order:
    {"id": "...", "result": "pass", "explanation": "..." or null,
     "mechanism": "...", "problem": "...", "error": "..."}
"explanation" is the expanded exp= text of a fail, null for pyspf's default
text and for every other result; "mechanism" is the term that matched;
"problem" is pyspf's message for permerror and temperror; "error" says why
pyspf crashed (result "crash"). Every DNS query goes to "server".
"""
import json
import sys

import dns.resolver
import spf

DEFAULT_EXP = "\x00default"


def resolver_for(server, cache={}):
    r = cache.get(server)
    if r is None:
        host, port = server.rsplit(":", 1)
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = [host.strip("[]")]
        r.port = int(port)
        r.timeout = 2
        r.lifetime = 4
        cache[server] = r
    return r


def evaluate(case):
    dns.resolver.default_resolver = resolver_for(case["server"])
    if case["scope"] == "helo":
        q = spf.query(i=case["ip"], s="", h=case["helo"], receiver=case["receiver"], querytime=20)
    else:
        q = spf.query(i=case["ip"], s=case["sender"], h=case["helo"], receiver=case["receiver"], querytime=20)
    q.set_default_explanation(DEFAULT_EXP)
    res, _, exp = q.check()
    out = {"result": res, "explanation": None, "mechanism": q.mechanism}
    if res in ("permerror", "temperror"):
        out["problem"] = exp
    elif res == "fail" and exp != DEFAULT_EXP:
        out["explanation"] = exp
    return out


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        case = json.loads(line)
        try:
            out = evaluate(case)
        except Exception as e:  # a crash is an answer too
            out = {"result": "crash", "explanation": None, "error": "%s: %s" % (type(e).__name__, e)}
        out["id"] = case["id"]
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

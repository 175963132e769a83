"""Kill -9 durability of the feedback store (standard library only).

Four threads post feedback to a running `jielong serve` as fast as they can; after a moment the
server is killed with SIGKILL. Every row the server acknowledged (HTTP 200 with an id) must then
be in the SQLite file, with exactly the text that was sent, and the database must pass
`PRAGMA integrity_check`. Usage: durability.py BASE_URL SERVER_PID DB_PATH
"""
import json
import os
import signal
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.request

base, pid, db = sys.argv[1], int(sys.argv[2]), sys.argv[3]
acked = {}  # id -> (reply, comment)
lock = threading.Lock()
stop = threading.Event()


def worker(w):
    i = 0
    while not stop.is_set():
        reply = f"reply {w}-{i} 回复 🙂 " + "x" * (i % 50)
        body = json.dumps({
            "messages": [{"role": "user", "content": f"question {w}-{i} 问题"}],
            "reply": reply, "rating": "up" if i % 2 else "down", "comment": f"c{w}-{i}",
        }).encode()
        req = urllib.request.Request(base + "/v1/feedback", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                row = json.loads(r.read())
            with lock:
                acked[row["id"]] = (reply, f"c{w}-{i}")
        except (urllib.error.URLError, ConnectionError, OSError, json.JSONDecodeError):
            if stop.is_set():
                return
        i += 1


threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
for t in threads:
    t.start()
time.sleep(1.5)
os.kill(pid, signal.SIGKILL)
stop.set()
for t in threads:
    t.join()

con = sqlite3.connect(db)
check = con.execute("PRAGMA integrity_check").fetchone()[0]
rows = {r[0]: (r[1], r[2]) for r in con.execute("SELECT id, reply, comment FROM feedback")}
missing = [i for i in acked if i not in rows]
wrong = [i for i, v in acked.items() if i in rows and rows[i] != v]
print(f"durability: {len(acked)} rows acknowledged before SIGKILL, {len(rows)} in the database, "
      f"integrity_check={check}, missing={len(missing)}, different={len(wrong)}")
if check != "ok" or missing or wrong or len(acked) < 10:
    raise SystemExit("FAIL: acknowledged feedback was lost or torn")

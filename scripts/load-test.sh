#!/usr/bin/env bash
# A bounded loopback load test of `recommender serve` (not a timed test): wrk with
# keep-alive for 1-pair, 1,000-pair and top-10 requests (and 1-pair on a new connection
# each, for comparison), then the server's RSS with 10,000 idle connections, the answer
# time of a normal request while 130 clients trickle their bodies, and the server's peak
# RSS over the worst requests of at most 6 MiB. Prints markdown tables for BENCHMARKS.md.
# Usage: scripts/load-test.sh [SECONDS per kind, default 10] [CONNECTIONS, default 8]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
conns=${2:-8}
port=${PORT:-18080}
work=target/load-test
mkdir -p "$work"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --example recommender -q
bin="${CARGO_TARGET_DIR:-target}/release/examples/recommender"
if [ ! -f "$work/model/config.json" ]; then
  # The built-in data at its default size (20,000 users, 5,000 items), one epoch.
  "$bin" --epochs 1 --no-ranking --model-dir "$work/model" >"$work/train.log"
fi

python3 - "$work" <<'EOF'
import json, random, sys
work = sys.argv[1]
users = json.load(open(f"{work}/model/users.json"))
items = json.load(open(f"{work}/model/items.json"))
random.seed(0)
def pairs(n):
    return {"customer_id": [random.choice(users) for _ in range(n)],
            "product_id": [random.choice(items) for _ in range(n)]}
json.dump(pairs(1), open(f"{work}/pair1.json", "w"))
json.dump(pairs(1000), open(f"{work}/pair1000.json", "w"))
json.dump({"customer_id": [users[0]], "k": 10}, open(f"{work}/top10.json", "w"))
EOF
cat >"$work/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open(os.getenv("BODY")):read("*a")
EOF

ulimit -n "$(ulimit -Hn)"
"$bin" serve --model-dir "$work/model" --port "$port" --max-in-flight 1024 >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/ping" >/dev/null 2>&1 && break
  sleep 0.1
done

startup_rss=$(awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server/status")
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores), server and wrk on the same cores"
echo
echo "| request | connections | req/s | p50 | p99 | non-2xx or errors |"
echo "|---|---|---|---|---|---|"
run() { # name body extra-wrk-args...
  local name=$1 body=$2
  shift 2
  local out
  out=$(BODY="$work/$body" wrk -t1 -c"$conns" -d"${seconds}s" --latency -s "$work/post.lua" "$@" \
    "http://127.0.0.1:$port/invocations")
  local rps p50 p99 bad
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  bad=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {n += 1} END {print n + 0}' <<<"$out")
  echo "| $name | $conns | $rps | $p50 | $p99 | $bad |"
}
run "1 pair, keep-alive" pair1.json
run "1 pair, new connection each" pair1.json -H "Connection: close"
run "1,000 pairs, keep-alive" pair1000.json
run "top-10 of $(python3 -c "import json;print(len(json.load(open('$work/model/items.json'))))") items, keep-alive" top10.json

python3 - "$server" "$port" "$startup_rss" <<'EOF'
import socket, sys, time
pid, port, startup = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
def ping(s):
    s.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b'"ok"' not in got:
        got += s.recv(4096)
before = rss()
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(10_000)]
time.sleep(1)
connected = rss()
for s in socks:
    ping(s)
time.sleep(1)
kept = rss()
probe = socket.create_connection(("127.0.0.1", port))
t = time.time(); ping(probe); latency = (time.time() - t) * 1000
for s in socks + [probe]:
    s.close()
time.sleep(2)
after = rss()
print()
print("| server RSS | MiB |")
print("|---|---|")
print(f"| at start (model loaded) | {startup} |")
print(f"| after the load runs above | {before:.0f} |")
print(f"| 10,000 connections open, nothing sent | {connected:.0f} |")
print(f"| the same after one request each (idle keep-alive) | {kept:.0f} |")
print(f"| after they closed | {after:.0f} |")
print(f"\nA ping on a new connection with the 10,000 open: {latency:.1f} ms")
EOF

# Worst cases of one request each (bodies of at most 6 MiB, SageMaker's limit) and slow
# uploads, against the peak RSS (VmHWM) of the same server.
python3 - "$server" "$port" "$work" <<'EOF'
import json, random, socket, sys, time
pid, port, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
users = json.load(open(f"{work}/model/users.json"))
items = json.load(open(f"{work}/model/items.json"))
def status(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
def post(body, headers=""):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    got = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    s.close()
    return int(got.split(b" ", 2)[1]), len(got)
def fill(make, limit=6 * 1024 * 1024):
    # The most ids whose JSON body stays within the limit.
    n, lo, hi = 1, 1, 4_000_000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(make(mid)) <= limit: lo = mid
        else: hi = mid - 1
    return make(lo), lo
random.seed(1)
cases = [
    ("10,000 known customers, k 10", lambda n: json.dumps({"customer_id": [random.choice(users) for _ in range(min(n, 10_000))], "k": 10}).encode()),
    ("10,000 known customers, k 1000", lambda n: json.dumps({"customer_id": [random.choice(users) for _ in range(min(n, 10_000))], "k": 1000}).encode()),
    ("6 MiB of known customers, k 10 (over the customer limit)", lambda n: json.dumps({"customer_id": [users[i % len(users)] for i in range(n)], "k": 10}).encode()),
    ("6 MiB of unknown pairs", lambda n: json.dumps({"customer_id": [str(i) for i in range(n)], "product_id": ["x"] * n}).encode()),
    ("6 MiB of known pairs", lambda n: json.dumps({"customer_id": [users[i % len(users)] for i in range(n)], "product_id": [items[i % len(items)] for i in range(n)]}).encode()),
]
print()
print("| worst-case request (one each, in this order) | status | answer bytes | peak RSS so far, MiB |")
print("|---|---|---|---|")
print(f"| (before) | | | {status('VmHWM'):.0f} |")
for name, make in cases:
    body, n = fill(make)
    code, size = post(body)
    print(f"| {name} ({len(body) / 2**20:.1f} MiB) | {code} | {size:,} | {status('VmHWM'):.0f} |")
# 130 clients trickle their bodies (headers sent, body never finished): a normal request's
# answer time meanwhile.
slow = []
for _ in range(130):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
    slow.append(s)
time.sleep(0.5)
pair = json.dumps({"customer_id": [users[0]], "product_id": [items[0]]}).encode()
t = time.time(); code, _ = post(pair); ms = (time.time() - t) * 1000
print(f"\nA 1-pair request while 130 clients trickle their bodies: {code} in {ms:.1f} ms")
for s in slow:
    s.close()
EOF

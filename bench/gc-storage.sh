#!/usr/bin/env bash
# What `sluice gc` gives back on a local home: 4 runs of the docs pipeline over one JSONL
# (6,000 documents of 80 random words, about 3.5 MB), 5% of the documents edited between
# runs, then `sluice gc --keep-runs 1`. Prints the home's bytes (and results/, chunk index)
# before and after, and checks embeddings_current holds the same 6,000 documents.
# Usage: bash bench/gc-storage.sh [WORK_DIR]   (default: a fresh temporary folder)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d)}"
mkdir -p "$work/in"
home="$work/home"
rm -rf "$home"
python3 - "$work/in/corpus.jsonl" <<'PY'
import json, random, sys
random.seed(1)
words = [''.join(random.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(random.randint(3, 9))) for _ in range(5000)]
with open(sys.argv[1], 'w') as out:
    for i in range(6000):
        out.write(json.dumps({'id': f'd{i}', 'text': ' '.join(random.choice(words) for _ in range(80))}) + '\n')
PY
# One du per path: given nested paths at once, du counts each file under the first only.
sizes() { for p in "$home" "$home/bucket/results" "$home/state/chunk-index"; do du -sb "$p"; done; }
for i in 1 2 3 4; do
  python3 - "$work/in/corpus.jsonl" "$i" <<'PY'
import json, sys
path, run = sys.argv[1], int(sys.argv[2])
rows = [json.loads(line) for line in open(path)]
for j, row in enumerate(rows):
    if j % 20 == run:
        row['text'] += f' edited {run}'
open(path, 'w').write(''.join(json.dumps(r) + '\n' for r in rows))
PY
  node bin/sluice.js run "$work/in/corpus.jsonl" --pipeline docs --home "$home" --json 2>/dev/null | tail -1 |
    python3 -c "import json,sys; s=json.load(sys.stdin); c=s['counts']; print(s['runId'], s['status'], 'chunks', c['chunks'], 'embedded', c['embedded'])"
done
echo "before gc:"; sizes
node bin/sluice.js query "select count(distinct doc_id) as docs from embeddings_current" --home "$home" --json
node bin/sluice.js gc --home "$home" --keep-runs 1
echo "after gc:"; sizes
node bin/sluice.js query "select count(distinct doc_id) as docs from embeddings_current" --home "$home" --json

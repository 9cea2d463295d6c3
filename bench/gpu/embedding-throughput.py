"""Prepared GPU check: padded tokens/s of one embedding copy over a worker's batches.

Runs a BERT encoder of the configured model's shape (bge-small-en-v1.5 by default:
12 layers x 384, 12 heads, feed-forward 1,536) with random weights in fp16 over the batch
shapes in bench/gpu/batches.json (written by bench/gpu/batch-shapes.ts from the same
chunking and token-budget batching a worker uses). Throughput depends on the shapes and
the arithmetic, not on the weights' values, so nothing is downloaded: the machine that runs
this has no network. Batches run one after another, as TEI runs them on one copy.

Usage (on the lent GPU machine, see bench/gpu/README.md):
    python3 bench/gpu/embedding-throughput.py --out "$OUT/gpu-throughput.json"

Writes the device, the model shape, each timed pass and the median padded tokens/s,
beside the figure the cost model assumes (336,785 padded tokens/s per copy).
"""

import argparse
import json
import os
import statistics
import sys
import time

ASSUMED_TOKENS_PER_SECOND = 336_785
SHAPES = {
    # name: (layers, hidden, heads, feed-forward); vocabulary 30,522, 512 positions.
    "bge-small-en-v1.5": (12, 384, 12, 1536),
    "bge-base-en-v1.5": (12, 768, 12, 3072),
    "bge-large-en-v1.5": (24, 1024, 16, 4096),
}


def parse_args(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default=os.path.join(here, "batches.json"))
    parser.add_argument("--model", default="bge-small-en-v1.5", choices=sorted(SHAPES))
    parser.add_argument("--passes", type=int, default=5, help="timed passes over every batch")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes first")
    parser.add_argument("--out", default=None, help="JSON result file (default: stdout only)")
    parser.add_argument("--check", action="store_true", help="read the batches and print the plan; no torch")
    return parser.parse_args(argv)


def load_batches(path):
    with open(path, encoding="utf-8") as f:
        shapes = json.load(f)
    batches = [(int(n), int(longest)) for n, longest in shapes["batches"]]
    if not batches or any(n < 1 or longest < 1 or longest > 512 for n, longest in batches):
        raise SystemExit(f"{path}: every batch needs 1+ inputs of 1 to 512 tokens")
    return shapes, batches


def main(argv):
    args = parse_args(argv)
    shapes, batches = load_batches(args.batches)
    padded = sum(n * longest for n, longest in batches)
    if args.check:
        print(f"{len(batches)} batches, {padded} padded tokens, model {args.model} {SHAPES[args.model]}")
        return 0

    import torch
    from transformers import BertConfig, BertModel

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run this on the lent GPU machine (bench/gpu/README.md)")
    layers, hidden, heads, ffn = SHAPES[args.model]
    config = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    model = BertModel(config, add_pooling_layer=False, attn_implementation="sdpa").half().cuda().eval()
    generator = torch.Generator(device="cuda").manual_seed(0)
    inputs = [
        (
            torch.randint(1000, 30000, (n, longest), device="cuda", generator=generator),
            torch.ones((n, longest), dtype=torch.long, device="cuda"),
        )
        for n, longest in batches
    ]

    def one_pass():
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            for ids, mask in inputs:
                hidden_states = model(input_ids=ids, attention_mask=mask).last_hidden_state
                # The CLS vector, normalized, as the endpoint returns it.
                torch.nn.functional.normalize(hidden_states[:, 0].float(), dim=-1)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    for _ in range(args.warmup):
        one_pass()
    seconds = [one_pass() for _ in range(args.passes)]
    median = statistics.median(seconds)
    result = {
        "name": "gpu-throughput",
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "model": {"name": args.model, "layers": layers, "hidden": hidden, "heads": heads, "ffn": ffn},
        "dtype": "float16",
        "attention": "sdpa",
        "workload": shapes["workload"],
        "batches": len(batches),
        "paddedTokens": padded,
        "passSeconds": [round(s, 4) for s in seconds],
        "paddedTokensPerSecond": round(padded / median),
        "assumedTokensPerSecond": ASSUMED_TOKENS_PER_SECOND,
        "measuredOverAssumed": round(padded / median / ASSUMED_TOKENS_PER_SECOND, 3),
        "note": "one copy, batches one after another; measured on this device, not on the ml.g5 (A10G) the cost model prices",
        "measuredAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

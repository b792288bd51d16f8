"""Benchmarks of the embedded default, measured side by side in one run (this machine is noisy: ratios, medians).

    python bench/run.py [--quick] [--output outputs/bench/results.json] [--skip zero ...]

1. stage-A cost: a stage-A step against an LLM-in-the-loop projector step (same batch), step time and whole-process
   peak memory, at the default's LLM and at a ~1B LLM shape (random weights);
2. inference (LoRA merged, as the evaluation runs it; the gain of merging measured first): generate overhead against
   the bare LLM, utterances/s at batch 1/4/8/16, real-time factor against Whisper tiny.en's own generate;
3. the encoder-feature cache: a stage-A epoch cold against warm;
4. ZeRO-2 against ZeRO-3 on 2 CPU processes;
5. long audio: minutes that fit in one prompt (the default, Llama-3.1-8B shapes), and a long real recording's
   real-time factor segment by segment at batch 1 and 8, and in one prompt.
Each part runs in a process of its own (its memory is its own, and no two parts share the cores). A table is printed
at the end and, as the LAST line, one JSON object with the headline ratios. `--quick` stays under ~10 minutes.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from bench.common import ROOT, WORK_DIR, default_checkpoint, last_json_line

BENCH = os.path.join(ROOT, "bench")
SETTINGS = {
    True: {"steps": 3, "steps_1b": 1, "batch_1b": 4, "cache_clips": 16, "zero_steps": 4, "inference": ["--quick"], "long_audio_rounds": 1},
    False: {"steps": 7, "steps_1b": 3, "batch_1b": 8, "cache_clips": 64, "zero_steps": 10, "inference": [], "long_audio_rounds": 3},
}


def run_part(script: str, *args: str) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    result = subprocess.run(
        [sys.executable, os.path.join(BENCH, script), *args], cwd=ROOT, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise RuntimeError(f"bench/{script} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return last_json_line(result.stdout)


def stage_a_cost(settings: dict) -> dict:
    results = {}
    for shape, steps, batch in (("default", settings["steps"], 8), ("1b", settings["steps_1b"], settings["batch_1b"])):
        for mode in ("stage_a", "llm_in_the_loop"):
            results[f"{mode}_{shape}"] = run_part(
                "training_step.py", "--mode", mode, "--shape", shape, "--steps", str(steps), "--batch", str(batch)
            )
        stage_a, llm = results[f"stage_a_{shape}"], results[f"llm_in_the_loop_{shape}"]
        suffix = "" if shape == "default" else "_1b"
        results[f"stage_a_speedup{suffix}"] = llm["step_s"] / stage_a["step_s"]
        results[f"stage_a_memory_ratio{suffix}"] = llm["peak_rss_gib"] / stage_a["peak_rss_gib"]
    # The 2026 loss: its contrastive and CTC terms over the whole vocabulary against a 4,096-row sample.
    for name, sample in (("whole_vocabulary", []), ("sampled_vocabulary", ["--loss_vocabulary_sample", "4096"])):
        results[f"stage_a_2026_{name}"] = run_part(
            "training_step.py", "--mode", "stage_a", "--stage_a_loss", "l1_cosine_contrastive_ctc", "--steps",
            str(settings["steps"]), *sample,
        )
    whole, sampled = results["stage_a_2026_whole_vocabulary"], results["stage_a_2026_sampled_vocabulary"]
    results["vocabulary_sample_speedup"] = whole["step_s"] / sampled["step_s"]
    return results


def table(results: dict) -> str:
    cost, inference = results["stage_a_cost"], results["inference"]
    rows = [
        ("stage-A step vs LLM-in-the-loop (default LLM)", f"{cost['stage_a_default']['step_s']:.3f} s vs {cost['llm_in_the_loop_default']['step_s']:.3f} s", f"{cost['stage_a_speedup']:.1f}× faster", "≥ 10×"),
        ("  peak memory, whole process", f"{cost['stage_a_default']['peak_rss_gib']:.2f} vs {cost['llm_in_the_loop_default']['peak_rss_gib']:.2f} GiB", f"{cost['stage_a_memory_ratio']:.1f}× less", "≥ 3×"),
        ("stage-A step vs LLM-in-the-loop (~1B LLM)", f"{cost['stage_a_1b']['step_s']:.3f} s vs {cost['llm_in_the_loop_1b']['step_s']:.3f} s", f"{cost['stage_a_speedup_1b']:.1f}× faster", "grows"),
        ("  peak memory, whole process", f"{cost['stage_a_1b']['peak_rss_gib']:.2f} vs {cost['llm_in_the_loop_1b']['peak_rss_gib']:.2f} GiB", f"{cost['stage_a_memory_ratio_1b']:.1f}× less", "grows"),
        ("2026 loss, whole vs sampled (4,096) vocabulary", f"{cost['stage_a_2026_whole_vocabulary']['step_s']:.3f} s vs {cost['stage_a_2026_sampled_vocabulary']['step_s']:.3f} s", f"{cost['vocabulary_sample_speedup']:.1f}× faster", ""),
        ("batch-1 generate, LoRA attached vs merged", f"{inference['lora_attached_s']:.3f} vs {inference['lora_merged_s']:.3f} s per clip", f"{inference['lora_merge_speedup']:.2f}× faster merged", f"same tokens: {inference['lora_merge_same_tokens']}"),
        ("speech generate vs bare LLM (encoder excluded)", f"{inference['speech_generate_s'] - inference['encoder_and_mapper_s']:.3f} s vs {inference['text_generate_s']:.3f} s", f"{inference['generate_overhead']:.2f}×", "≤ 1.10×"),
        ("Whisper encoder, valid frames vs its 30 s window", f"{inference['encoder_valid_frames_s']:.3f} s vs {inference['encoder_30s_window_s']:.3f} s", f"{inference['whisper_window_speedup']:.1f}× faster", ""),
        ("utterances/s at batch 1 / 4 / 8 / 16", " / ".join(f"{v:.2f}" for v in inference["utterances_per_s"].values()), f"batch 8: {inference['batch8_speedup']:.1f}× batch 1", "≥ 4×"),
        ("  per utterance, prefill / decode, batch 1 vs 8", " vs ".join(f"{v['prefill_s']:.3f} / {v['decode_s']:.3f} s" for v in inference["seconds_per_utterance"].values()), f"ceiling {inference['batch8_ceiling']:.1f}× (free decode)", ""),
        ("real-time factor vs Whisper tiny.en", f"{inference['rtf']:.3f} vs {inference['whisper_tiny_rtf']:.3f}", f"{inference['rtf'] / inference['whisper_tiny_rtf']:.1f}× Whisper's", "RTF ≤ 0.2"),
    ]
    if "feature_cache" in results:
        cache = results["feature_cache"]
        rows.append(("stage-A epoch, cold vs warm cache", f"{cache['cold_epoch_s']:.1f} s vs {cache['warm_epoch_s']:.1f} s", f"{cache['cache_speedup']:.1f}× faster warm", ""))
    if "zero" in results:
        zero = results["zero"]
        rows.append(("ZeRO-2 vs ZeRO-3, per process (2 procs)", f"{zero['zero2']['peak_rss_gib']:.2f} vs {zero['zero3']['peak_rss_gib']:.2f} GiB", f"step {zero['zero2']['step_s']:.2f} vs {zero['zero3']['step_s']:.2f} s", ""))
    if "long_audio" in results:
        long = results["long_audio"]
        fits = long["minutes_per_prompt"]
        rows.append(("minutes of audio in one prompt: default / Llama-3.1-8B", f"{fits['default']['minutes']:.0f} / {fits['llama_3_1_8b_paper_shapes']['minutes']:.0f} min", f"{fits['default']['audio_tokens_per_minute']:.0f} audio tokens a minute", ""))
        rows.append((f"long recording ({long['audio_seconds']:.0f} s, {long['segments']} segments): RTF batch 1 / 8", f"{long['rtf']['segments_batch1']:.2f} / {long['rtf']['segments_batch8']:.2f}", f"batch 8: {long['segments_batch8_speedup']:.1f}× batch 1", ""))
        rows.append(("  in one prompt (a question), RTF", f"{long['rtf']['one_prompt_question']:.2f}", "", ""))
    width = [max(len(row[i]) for row in rows) for i in range(4)]
    header = ("measure", "measured", "ratio", "goal")
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(header, width)), "-+-".join("-" * w for w in width)]
    lines += [" | ".join(cell.ljust(w) for cell, w in zip(row, width)) for row in rows]
    return "\n".join(lines)


def headline(results: dict) -> dict:
    cost, inference = results["stage_a_cost"], results["inference"]
    keys = ("stage_a_speedup", "stage_a_memory_ratio", "stage_a_speedup_1b", "stage_a_memory_ratio_1b")
    summary = {key: round(cost[key], 3) for key in keys}
    summary.update({key: round(inference[key], 3) for key in ("lora_merge_speedup", "generate_overhead", "batch8_speedup", "batch8_ceiling", "rtf", "whisper_tiny_rtf")})
    if "feature_cache" in results:
        summary["cache_speedup"] = round(results["feature_cache"]["cache_speedup"], 3)
    if "long_audio" in results:
        summary["long_audio_rtf_batch8"] = round(results["long_audio"]["rtf"]["segments_batch8"], 3)
    if "zero" in results:
        summary["zero3_memory_ratio"] = round(results["zero"]["zero3_memory_ratio"], 3)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps: under ~10 minutes on 2 cores")
    parser.add_argument("--output", default=os.path.join(WORK_DIR, "results.json"))
    parser.add_argument("--skip", nargs="*", default=[], choices=["feature_cache", "zero", "long_audio"])
    args = parser.parse_args()
    settings = SETTINGS[args.quick]
    started = time.time()
    default_checkpoint()  # built once, before anything is timed
    results = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "quick": args.quick}
    print("stage-A cost ...", file=sys.stderr, flush=True)
    results["stage_a_cost"] = stage_a_cost(settings)
    print("inference ...", file=sys.stderr, flush=True)
    results["inference"] = run_part("inference.py", *settings["inference"])
    optional = {
        "feature_cache": ("feature_cache.py", "--clips", str(settings["cache_clips"])),
        "zero": ("zero.py", "--steps", str(settings["zero_steps"])),
        "long_audio": ("long_recordings.py", "--rounds", str(settings["long_audio_rounds"])),
    }
    for name, command in optional.items():
        if name in args.skip:
            continue
        print(f"{name} ...", file=sys.stderr, flush=True)
        try:
            results[name] = run_part(*command)
        except RuntimeError as error:  # keep what was measured; say what failed
            print(f"{name} failed, left out of the table: {error}", file=sys.stderr)
    results["seconds"] = time.time() - started
    results["headline"] = headline(results)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as handle:
        json.dump(results, handle, indent=2)
    print(table(results))
    print(f"(all numbers in {args.output}; {results['seconds'] / 60:.1f} min)")
    print(json.dumps(results["headline"]))


if __name__ == "__main__":
    main()

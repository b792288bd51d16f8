"""Debian's Asterisk telephone prompts (asterisk-core-sounds-en, CC BY-SA 3.0) as an audiofolder of real speech.

    apt-get install asterisk-core-sounds-en asterisk-core-sounds-en-wav
    python -m training.asterisk_prompts --output_dir outputs/asterisk-prompts

553 prompts read by one professional US speaker (8 kHz WAV; the processor resamples). The transcripts come from the
package's core-sounds-en.txt.gz (`name: text`); prompts that are tones or sound effects ("[beep]") are left out. The
metadata points at the installed files, so nothing is copied; each row's `prompt` names it, which lets a run hold some
prompts out for development (a source's {"speakers": "dev", "speaker_column": "prompt"}).
"""

import argparse
import gzip
import json
import os

PACKAGE_DIR = "/usr/share/asterisk/sounds/en_US_f_Allison"
TRANSCRIPTS = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
INSTALL = "apt-get install asterisk-core-sounds-en asterisk-core-sounds-en-wav"


def read_transcripts(path: str = TRANSCRIPTS) -> dict[str, str]:
    """{"agent-loginok": "Agent logged in.", ...}: the spoken prompts, without comments and bracketed sounds."""
    transcripts = {}
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            name, separator, text = line.partition(":")
            text = text.strip()
            if line.startswith(";") or not separator or not text or "[" in text:
                continue
            transcripts[name.strip()] = " ".join(text.split())
    return transcripts


def prompt_rows(sounds_dir: str = PACKAGE_DIR, transcripts_path: str = TRANSCRIPTS) -> list[dict]:
    """One row per prompt with both a WAV file and a transcript, in name order."""
    for path in (sounds_dir, transcripts_path):
        if not os.path.exists(path):
            raise SystemExit(f"{path} is missing: install Debian's Asterisk prompts ({INSTALL})")
    transcripts = read_transcripts(transcripts_path)
    rows = []
    for name in sorted(transcripts):
        audio = os.path.join(sounds_dir, name + ".wav")
        if os.path.isfile(audio):
            rows.append({"file_name": audio, "transcript": transcripts[name], "prompt": name, "speaker": "allison"})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/asterisk-prompts")
    parser.add_argument("--sounds_dir", default=PACKAGE_DIR)
    args = parser.parse_args()
    rows = prompt_rows(args.sounds_dir)
    os.makedirs(args.output_dir, exist_ok=True)
    with open(os.path.join(args.output_dir, "metadata.jsonl"), "w") as handle:
        handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    print(f"{len(rows)} prompts → {args.output_dir}/metadata.jsonl")


if __name__ == "__main__":
    main()

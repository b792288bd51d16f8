"""The demo page: try a speechllm checkpoint by clicking, in a browser.

    ./run demo [--checkpoint DIR] [--port N] [--host ADDRESS]

A gradio app on the embedded default (or any checkpoint): upload or record audio, then transcribe it, translate it,
ask a question about it or give a free instruction. The answer streams in as it is generated (transformers'
TextIteratorStreamer); audio of any length works, long recordings segment by segment with a progress bar, exactly
as `pipeline("speech-instruct")` runs them. Under the answer: the audio's duration, the time taken and the
real-time factor.
"""

import argparse
import os
import threading
import time

import gradio as gr
from transformers import TextIteratorStreamer

from evaluation.language_id import LANGUAGE_NAMES
from processing_speechllm import TRANSLATE_INSTRUCTIONS, load_audio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The system's three target languages first; any other language the processor has an instruction for after them.
LANGUAGES = [(LANGUAGE_NAMES.get(code, code), code) for code in sorted(TRANSLATE_INSTRUCTIONS, key=lambda c: (c not in ("de", "it", "zh"), c))]


class Responder:
    """Runs one request of the page through the pipeline and yields (text so far, status line) while it decodes."""

    def __init__(self, pipe, max_new_tokens: int = 150):
        self.pipe = pipe
        self.max_new_tokens = max_new_tokens

    def request(self, task: str, language: str, question: str, instruction: str) -> dict:
        """The pipeline arguments of a click; a missing field is an error shown on the page."""
        if task == "instruct":
            if not instruction.strip():
                raise gr.Error("Write an instruction first.")
            return {"instruction": instruction.strip()}
        if task == "answer" and not question.strip():
            raise gr.Error("Write a question about the recording first.")
        return {"task": task, "target_language": language if task == "translate" else None,
                "question": question.strip() if task == "answer" else None}

    def respond(self, task: str, audio_path, language: str, question: str, instruction: str, progress=gr.Progress()):
        if not audio_path:
            raise gr.Error("Upload or record some audio first.")
        request = self.request(task, language, question, instruction)
        rate = self.pipe.processor.sampling_rate
        try:
            clip = load_audio(audio_path, None, rate, name=os.path.basename(audio_path))
        except ValueError as error:
            raise gr.Error(str(error)) from None
        duration = len(clip) / rate
        mode = "segments" if task in ("transcribe", "translate") else "one_prompt"
        bounds = self.pipe.segments(clip, mode)
        started = time.perf_counter()
        target = request.get("target_language")  # joins segments without spaces where the language has none
        texts = []
        for number, (start, end) in enumerate(bounds, 1):
            if len(bounds) > 1:
                progress((number - 1) / len(bounds), desc=f"segment {number} of {len(bounds)}")
            text = ""
            for text in self.stream(clip[start:end], mode, request):
                yield self.pipe.join(texts + [text], target), self.status(duration, started, number, len(bounds))
            texts.append(text.strip())
        yield self.pipe.join(texts, target), self.status(duration, started, len(bounds), len(bounds), done=True)

    def stream(self, clip, mode: str, request: dict):
        """The text of one generation as it grows, token piece by token piece; a transcript decoded by beam search
        (the checkpoint's transcribe_num_beams) comes whole when it is done, since its beams are not one text."""
        if request.get("task") == "transcribe" and self.pipe.model.config.transcribe_num_beams > 1:
            yield self.pipe(clip, sampling_rate=self.pipe.processor.sampling_rate, long_audio=mode,
                            max_new_tokens=self.max_new_tokens, **{k: v for k, v in request.items() if v is not None})
            return
        streamer = TextIteratorStreamer(self.pipe.processor.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failures = []

        def generate():
            try:
                self.pipe(clip, sampling_rate=self.pipe.processor.sampling_rate, long_audio=mode, streamer=streamer,
                          max_new_tokens=self.max_new_tokens, **{k: v for k, v in request.items() if v is not None})
            except Exception as error:  # shown on the page, not lost in a thread
                failures.append(error)
                streamer.end()

        worker = threading.Thread(target=generate, daemon=True)
        worker.start()
        text = ""
        for piece in streamer:
            text += piece
            yield text
        worker.join()
        if failures:
            raise gr.Error(str(failures[0]))
        yield text

    @staticmethod
    def status(duration: float, started: float, segment: int, segments: int, done: bool = False) -> str:
        taken = time.perf_counter() - started
        where = "done" if done else "decoding" + (f" segment {segment} of {segments}" if segments > 1 else "")
        return f"{where} · audio {duration:.1f} s · took {taken:.1f} s · real-time factor {taken / duration:.2f}"


def build_page(pipe, title: str = "speechllm", max_new_tokens: int = 150) -> gr.Blocks:
    responder = Responder(pipe, max_new_tokens)
    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(f"# {title}\nOne speech LLM for transcription, translation and spoken questions. "
                    "Upload or record audio, then pick what to do.")
        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio", elem_id="audio")
        with gr.Row():
            language = gr.Dropdown(choices=LANGUAGES, value="de", label="Translate into", elem_id="language")
            question = gr.Textbox(label="Question about the recording", elem_id="question")
            instruction = gr.Textbox(label="Free instruction", elem_id="instruction")
        with gr.Row():
            buttons = {task: gr.Button(label, variant="primary" if task == "transcribe" else "secondary", elem_id=task)
                       for task, label in (("transcribe", "Transcribe"), ("translate", "Translate"),
                                           ("answer", "Answer the question"), ("instruct", "Instruct"))}
        output = gr.Textbox(label="Output", lines=6, elem_id="output", interactive=False)
        status = gr.Markdown(elem_id="status")
        for task, button in buttons.items():
            button.click(responder_for(responder, task), [audio, language, question, instruction], [output, status])
    return page


def launch_page(page: gr.Blocks, host: str = "127.0.0.1", port: int | None = None, block: bool = True):
    """Serve the page; with block=False return at once (tests) and close it with page.close()."""
    # System fonts: the page must not wait on a font server (it runs offline too).
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    return page.queue().launch(server_name=host, server_port=port, prevent_thread_lock=not block, theme=theme,
                               quiet=not block, footer_links=[])


def responder_for(responder: Responder, task: str):
    def respond(audio, language, question, instruction, progress=gr.Progress()):
        yield from responder.respond(task, audio, language, question, instruction, progress)

    return respond


def load_pipeline(checkpoint: str | None):
    from transformers import pipeline

    if checkpoint is None:
        from scripts.build_default_model import built_default

        checkpoint = built_default(os.path.join(ROOT, "outputs", "default"))
    pipe = pipeline("speech-instruct", model=checkpoint, trust_remote_code=True)
    pipe.model.merge_lora()  # inference only: folded adapters decode faster, same tokens
    return pipe


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="any speechllm checkpoint directory (default: the embedded default)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to reach the page from other machines")
    parser.add_argument("--max-new-tokens", type=int, default=150)
    args = parser.parse_args()
    pipe = load_pipeline(args.checkpoint)
    print(f"audio up to {pipe.processor.max_samples / pipe.processor.sampling_rate:.0f} s goes in one window; "
          "longer recordings run segment by segment (transcribe, translate) or in one prompt (questions)")
    launch_page(build_page(pipe, max_new_tokens=args.max_new_tokens), args.host, args.port)


if __name__ == "__main__":
    main()

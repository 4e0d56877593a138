#!/usr/bin/env python3
"""whisper.cpp's `whisper-stream` as the streaming peer of `pipeline stream`:
replays a WAV file to it as if it were a microphone, at real time, and
writes what it committed and when, as JSON.

How the file becomes a microphone: whisper-stream captures only through
SDL2, and SDL2's "disk" audio driver (chosen with SDL_AUDIODRIVER=disk;
SDL 2.26 src/audio/disk/SDL_diskaudio.c) reads capture input from the file
named by SDL_DISKAUDIOFILEIN as raw bytes in the format the program asked
for, which for whisper-stream is f32 mono 16 kHz in 1024-sample buffers
(examples/common-sdl.cpp). Left alone the driver paces itself with an
SDL_Delay of SDL_DISKAUDIODELAY ms (default: one buffer, 64 ms) before each
read, which runs slower than real time by the read and callback time. So the
file is a FIFO instead, SDL_DISKAUDIODELAY=0, and this script writes buffer
k at audio start + (k + 1) * 64 ms, the moment a microphone would deliver
it: the pacing is this script's clock, and "audio start" (the first buffer's
first sample) is known exactly. After the audio the FIFO carries digital
silence at the same pace, as a microphone in a quiet room would, until
whisper-stream has committed the text covering the audio's end; then it gets
SIGINT (SDL turns it into SDL_QUIT, the loop's exit) and exits printing its
timings.

Modes (examples/stream/stream.cpp, whisper.cpp 1.8.5):
- Sliding window (`--step-ms` > 0, the default): every step it transcribes
  the last `length` of audio (greedy, one segment, no timestamps) and
  reprints the line in place (ESC[2K CR); every `length/step - 1`
  iterations it ends the line with a newline, keeps only `keep` ms of audio
  for the next window, and starts a new line. A newline-ended line is final
  (never reprinted), every other print is a partial. Audio that arrives
  while an iteration runs longer than a step is dropped: each iteration
  takes only the newest `step` ms (audio_async::get), so when whisper-stream
  is slower than real time it skips audio rather than falling behind;
  "iterations" and "dropped_s" say how much.
- VAD (`--step-ms 0`): every 2 s it checks the last 2 s with its energy VAD;
  when the last second is quiet it transcribes the last `length` of audio
  (with timestamps) as one "### Transcription N START | t0 | t1 ... END"
  block. Blocks are final, there are no partials. Consecutive windows
  overlap (nothing is cleared: each block re-transcribes up to `length` of
  audio before it), so a block's final is only the words that follow its
  alignment with the previous block (Parser.new_words); block ends (t1) are
  placed on this script's clock through the "[Start speaking]" line,
  printed right before whisper-stream's own clock starts.

Parameters: whisper.cpp's README for examples/stream shows
`-t 8 --step 500 --length 5000` (sliding window) and
`--step 0 --length 30000 -vth 0.6` (VAD); the program's own defaults are
step 3000, length 10000, keep 200. The defaults here, step 1000 / length
10000 / keep 200 / 2 threads, are the README's sliding-window mode with the
program's default window and the shortest step 2 cores can sustain: every
iteration encodes a whole 30 s window, which whisper.cpp does for tiny.en in
about 0.7 s on this 2-core VM when nothing else runs (docs/benchmarks.md),
so a 500 ms step drops audio; on a busy machine 1000 ms drops audio too
(dropped_s). The VAD mode is the README's second setting:
`--step-ms 0 --length-ms 30000 --extra="-vth 0.6"`. `--extra` passes more
whisper-stream options as one string (write it with "=" when it starts with
"-"), e.g. `--extra="-ac 768"` to shrink the encoder window.

Output JSON: audio_s (the file's length), wall_s (whisper-stream's wall
time, spawn to exit: model load and the silent tail included), fed_s (audio
plus silence fed before SIGINT), cpu_s (user + sys of whisper-stream, from
wait4), rtf (cpu_s / audio_s), rtf_fed (cpu_s / fed_s: the tail of
silence counted as audio), startup_s (audio start to "[Start
speaking]", i.e. model load), iterations, dropped_s (sliding window only:
fed audio the iterations did not take), first_partial_s (first non-empty
text, partial or final), finals [{text, raw, emit_s}] (emit_s: seconds after
audio start that the final reached this script), final_text (the finals
joined), final_words [{word, emit_s}] (each word of each final with that
final's emit time, for aligning to reference word times), partials [{text,
emit_s}], mode and args. Texts drop whisper's bracketed non-speech notes
("[BLANK_AUDIO]", "(music)"); "raw" keeps them.

Usage: stream_peer_whispercpp.py --audio WAV --model GGML --bin WHISPER_STREAM
       [--step-ms 1000 --length-ms 10000 --keep-ms 200 --threads 2
       --max-seconds S --extra="ARGS" --log LOG] --out JSON
"""
import argparse
import codecs
import difflib
import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time

RATE = 16000
BUFFER = 1024  # samples per SDL capture buffer, as whisper-stream asks
ERASE = "\x1b[2K\r"
NOTE = re.compile(r"\[[^\]]*\]|\([^)]*\)")
BLOCK_START = re.compile(r"### Transcription (\d+) START \| t0 = (-?\d+) ms \| t1 = (-?\d+) ms")
BLOCK_END = re.compile(r"### Transcription (\d+) END")
SEGMENT = re.compile(r"\[(\d+):(\d+):(\d+\.\d+) --> (\d+):(\d+):(\d+\.\d+)\]\s?(.*)")


def load_audio(path, max_seconds):
    """The file as f32 little-endian mono 16 kHz bytes, through ffmpeg."""
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", path]
    if max_seconds is not None:
        cmd += ["-t", str(max_seconds)]
    cmd += ["-ac", "1", "-ar", str(RATE), "-f", "f32le", "-"]
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout


def clean(text):
    return " ".join(NOTE.sub(" ", text).split())


def norm(word):
    return "".join(c for c in word.lower() if c.isalnum())


class Feeder(threading.Thread):
    """Writes the audio into the FIFO one capture buffer at a time, each at
    the moment a microphone would deliver it, then silence at the same pace
    until stopped or the reader goes away."""

    def __init__(self, fifo, audio, proc):
        super().__init__(daemon=True)
        self.fifo, self.audio, self.proc = fifo, audio, proc
        self.t0 = None
        self.started = threading.Event()
        self.stop = threading.Event()
        self.error = None
        self.lag = 0.0  # how late the latest-written buffer went out, at most

    def open_fifo(self):
        # Non-blocking until whisper-stream opens its end, so a child that
        # dies first does not leave this thread blocked in open.
        while self.proc.poll() is None:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.005)
                continue
            os.set_blocking(fd, True)
            return fd
        return None

    def run(self):
        fd = self.open_fifo()
        if fd is None:
            self.started.set()
            return
        step = BUFFER * 4
        silence = bytes(step)
        self.t0 = time.monotonic()
        self.started.set()
        k = 0
        try:
            while not self.stop.is_set():
                due = self.t0 + (k + 1) * BUFFER / RATE
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                chunk = self.audio[k * step:(k + 1) * step]
                os.write(fd, chunk + silence[len(chunk):])
                self.lag = max(self.lag, time.monotonic() - due)
                k += 1
        except BrokenPipeError:
            pass
        except OSError as e:
            self.error = e
        finally:
            os.close(fd)


class Parser:
    """Turns whisper-stream's stdout, read as it comes, into partials and
    finals stamped with their arrival time (seconds after audio start)."""

    def __init__(self, vad, length_s):
        self.vad, self.length_s = vad, length_s
        self.buf = ""
        self.piece_time = None  # sliding window: arrival of buf's last byte
        self.partials, self.finals = [], []
        self.start_speaking = None  # arrival of "[Start speaking]"
        self.outputs = []  # arrival of each iteration's output
        self.block = None  # VAD: (t1 on our clock, [(start, end, text)])
        self.covered = 0.0  # VAD: audio already transcribed, our clock
        self.previous = []  # VAD: the words of the latest block

    @property
    def iterations(self):
        return len(self.outputs)

    def feed(self, data, now):
        if self.start_speaking is None:
            self.buf += data
            i = self.buf.find("[Start speaking]\n")
            if i < 0:
                return
            self.start_speaking = now
            data = self.buf[i + len("[Start speaking]\n"):]
            self.buf = ""
        if self.vad:
            self.buf += data
            while "\n" in self.buf:
                line, self.buf = self.buf.split("\n", 1)
                self.vad_line(line.strip(), now)
        else:
            self.window_data(data, now)

    def window_data(self, data, now):
        # Each iteration prints ERASE, 100 spaces, ERASE, its text, and a
        # newline when it commits the line. Pieces between ERASEs are thus
        # the blanking spaces (one per iteration), texts, and committed texts
        # ending in a newline. buf holds the piece still open; a partial is
        # complete when the next ERASE arrives but is stamped with the
        # arrival of its own last byte.
        old = len(self.buf)
        pieces = (self.buf + data).split(ERASE)
        for i, piece in enumerate(pieces[:-1]):
            self.window_piece(piece, now if i > 0 or len(piece) > old else self.piece_time)
        last = pieces[-1]
        if len(pieces) > 1 or len(last) > old:
            self.piece_time = now
        if last.endswith("\n"):
            self.window_piece(last, now)
            last = ""
        self.buf = last

    def window_piece(self, piece, when):
        if piece == " " * 100:
            self.outputs.append(when)
        elif piece.endswith("\n"):
            raw = piece[:-1]
            # The iteration printing it, its blanking spaces counted already.
            self.finals.append({"text": clean(raw), "raw": raw, "emit_s": when,
                                "iteration": self.iterations - 1})
        elif clean(piece):
            self.partials.append({"text": clean(piece), "raw": piece, "emit_s": when})

    def finish(self):
        """The text on screen when whisper-stream exited, never committed."""
        if not self.vad and self.buf.strip():
            self.window_piece(self.buf.rstrip("\n"), self.piece_time)
            self.buf = ""

    def vad_line(self, line, now):
        start = BLOCK_START.match(line)
        if start:
            self.block = (self.start_speaking + int(start.group(3)) / 1000, [])
            return
        if self.block is None:
            return
        seg = SEGMENT.match(line)
        if seg:
            h0, m0, s0, h1, m1, s1, text = seg.groups()
            base = max(0.0, self.block[0] - self.length_s)
            a = base + int(h0) * 3600 + int(m0) * 60 + float(s0)
            b = base + int(h1) * 3600 + int(m1) * 60 + float(s1)
            self.block[1].append((a, b, text))
        elif BLOCK_END.match(line):
            t1, segments = self.block
            new = self.new_words(segments)
            self.finals.append({"text": " ".join(new), "raw": " ".join(t for _, _, t in segments),
                                "emit_s": now, "iteration": self.iterations})
            self.outputs.append(now)
            self.previous = [w for _, _, t in segments for w in clean(t).split()]
            self.covered = max(self.covered, t1)
            self.block = None

    def new_words(self, segments):
        """The words of a VAD block that the blocks before it had not
        printed. Its window re-transcribes the audio up to the previous
        block's end: the previous block's words are aligned to the words of
        the segments starting before that end, and what follows the last
        aligned word is new. Segment times are whole seconds or coarser, so
        they only bound the alignment; without a match, the segments whose
        midpoint lies past the previous block's end are new."""
        words = [clean(t).split() for _, _, t in segments]
        flat = [w for ws in words for w in ws]
        overlap = sum(len(ws) for (a, _, _), ws in zip(segments, words) if a < self.covered)
        match = difflib.SequenceMatcher(
            None, [norm(w) for w in self.previous], [norm(w) for w in flat[:overlap]], autojunk=False)
        ends = [m.b + m.size for m in match.get_matching_blocks() if m.size > 0]
        if ends:
            return flat[max(ends):]
        return [w for (a, b, _), ws in zip(segments, words) if (a + b) / 2 > self.covered for w in ws]

    def covers(self, audio_end):
        """Whether the finals cover the audio up to audio_end: in the
        sliding window, a final comes from a line that an iteration after
        audio_end has extended (each iteration takes its audio once the one
        before has printed); in VAD mode, a block reached past audio_end."""
        if self.vad:
            return self.covered >= audio_end
        if not self.finals:
            return False
        last = self.finals[-1]["iteration"]
        return any(t >= audio_end for t in self.outputs[:last])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--audio", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--bin", required=True, help="whisper-stream")
    ap.add_argument("--step-ms", type=int, default=1000)
    ap.add_argument("--length-ms", type=int, default=10000)
    ap.add_argument("--keep-ms", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, help="only the first S seconds of the file")
    ap.add_argument("--extra", default="", help="more whisper-stream options, one string")
    ap.add_argument("--out", required=True)
    ap.add_argument("--log", help="also write whisper-stream's stdout, then its stderr, here")
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    audio = load_audio(args.audio, args.max_seconds)
    audio_s = len(audio) / 4 / RATE
    vad = args.step_ms <= 0
    cmd = [args.bin, "-m", args.model, "-t", str(args.threads), "--step", str(args.step_ms),
           "--length", str(args.length_ms), "--keep", str(args.keep_ms)]
    cmd += shlex.split(args.extra)
    # whisper-stream widens a window shorter than a step to the step.
    length_s = max(args.length_ms, args.step_ms) / 1000
    # Long enough for the line covering the audio's end to be committed even
    # when every iteration overruns its step.
    tail_limit_s = 2 * length_s + 60

    with tempfile.TemporaryDirectory() as tmp:
        fifo = os.path.join(tmp, "mic.f32")
        os.mkfifo(fifo)
        env = dict(os.environ, SDL_AUDIODRIVER="disk", SDL_DISKAUDIOFILEIN=fifo,
                   SDL_DISKAUDIODELAY="0")
        stderr = open(os.path.join(tmp, "stderr"), "w+")
        spawned = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=stderr)
        feeder = Feeder(fifo, audio, proc)
        feeder.start()
        parser = Parser(vad, length_s)
        fd = proc.stdout.fileno()
        stop_sent = None
        feeder.started.wait()
        t0 = feeder.t0 if feeder.t0 is not None else spawned
        stdout = []
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while True:
            ready, _, _ = select.select([fd], [], [], 0.05)
            now = time.monotonic() - t0
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    break
                text = decoder.decode(data)
                stdout.append(text)
                parser.feed(text, now)
            if stop_sent is None and (parser.covers(audio_s) or now > audio_s + tail_limit_s):
                proc.send_signal(signal.SIGINT)
                stop_sent = now
            elif stop_sent is not None and now > stop_sent + 120:
                # SIGINT is seen between iterations; one on a loaded machine
                # has taken over 30 s.
                proc.kill()
        parser.finish()
        _, status, usage = os.wait4(proc.pid, 0)
        exited = time.monotonic()
        feeder.stop.set()
        feeder.join(timeout=5)
        stderr.seek(0)
        log = stderr.read()

    if args.log:
        with open(args.log, "w") as f:
            f.write("".join(stdout) + "\n---- stderr\n" + log)
    code = os.waitstatus_to_exitcode(status)
    if parser.start_speaking is None or feeder.t0 is None:
        sys.exit(f"whisper-stream did not start (exit {code}):\n{log[-3000:]}")
    finals = [{"text": f["text"], "raw": f["raw"], "emit_s": round(f["emit_s"], 3)}
              for f in parser.finals if f["text"]]
    fed_s = stop_sent if stop_sent is not None else exited - t0
    result = {
        "audio": args.audio,
        "audio_s": round(audio_s, 3),
        "wall_s": round(exited - spawned, 3),
        "fed_s": round(fed_s, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "rtf": round((usage.ru_utime + usage.ru_stime) / audio_s, 3),
        "rtf_fed": round((usage.ru_utime + usage.ru_stime) / fed_s, 3),
        "startup_s": round(parser.start_speaking, 3),
        "covered_end": parser.covers(audio_s),
        "iterations": parser.iterations,
        "first_partial_s": next(
            (round(e["emit_s"], 3) for e in sorted(parser.partials + finals, key=lambda e: e["emit_s"])
             if e["text"]), None),
        "final_text": " ".join(f["text"] for f in finals),
        "finals": finals,
        "final_words": [{"word": w, "emit_s": f["emit_s"]}
                        for f in finals for w in f["text"].split()],
        "partials": [{"text": p["text"], "emit_s": round(p["emit_s"], 3)} for p in parser.partials],
        "mode": "vad" if vad else "sliding-window",
        "args": cmd[1:],
        "exit_code": code,
        "feed_lag_max_s": round(feeder.lag, 3),
        "loadavg_1min": [load_before, os.getloadavg()[0]],
    }
    if not vad:
        taken = parser.iterations * args.step_ms / 1000
        result["dropped_s"] = round(max(0.0, fed_s - parser.start_speaking - taken), 3)
    if code != 0:
        result["stderr_tail"] = log[-2000:]
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    summary = {k: result[k] for k in ("audio_s", "wall_s", "fed_s", "cpu_s", "rtf", "rtf_fed", "startup_s",
                                      "iterations", "first_partial_s", "covered_end",
                                      "feed_lag_max_s", "loadavg_1min")}
    summary["finals"] = len(finals)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

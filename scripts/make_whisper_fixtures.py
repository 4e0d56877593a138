#!/usr/bin/env python3
"""Reference outputs of openai-whisper (PyTorch, fp32, CPU) on jfk.wav with
the tiny.en checkpoint in ../shared/models, for the model parity tests:

  mel_every10     log-mel of the first 30 s window, every 10th frame  [300, 80]
  encoder_every50 encoder output, every 50th frame                    [30, 384]
  logits_sot      decoder logits after <|startoftranscript|><|notimestamps|> [51864]
  greedy_tokens   whisper.decode(language="en", without_timestamps=True,
                  temperature=0, fp16=False): the sampled text tokens

Needs: openai-whisper, numpy (pip). Usage:
  python scripts/make_whisper_fixtures.py ../shared models/tests/fixtures/whisper-tiny.en-jfk.npz
"""
import sys
import wave
from pathlib import Path

import numpy as np
import torch
import whisper


def read_wav(path):
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def main(shared, out):
    shared = Path(shared)
    model = whisper.load_model(str(shared / "models/whisper-tiny.en-openai/tiny.en.pt"), device="cpu").float()
    audio = whisper.pad_or_trim(torch.from_numpy(read_wav(shared / "data/audio/jfk.wav")))
    mel = whisper.log_mel_spectrogram(audio)  # [80, 3000]
    tokenizer = whisper.tokenizer.get_tokenizer(multilingual=False)
    with torch.no_grad():
        audio_features = model.encoder(mel[None])  # [1, 1500, 384]
        tokens = torch.tensor([[tokenizer.sot, tokenizer.no_timestamps]])
        logits = model.decoder(tokens, audio_features)[0, -1]
    result = whisper.decode(
        model, mel, whisper.DecodingOptions(language="en", without_timestamps=True, temperature=0.0, fp16=False)
    )
    np.savez_compressed(
        out,
        mel_every10=mel.T[::10].numpy().astype(np.float32),
        encoder_every50=audio_features[0, ::50].numpy().astype(np.float32),
        logits_sot=logits.numpy().astype(np.float32),
        tokens=tokens[0].numpy().astype(np.int64),
        greedy_tokens=np.array(result.tokens, dtype=np.int64),
    )
    print("greedy text:", repr(result.text))
    print(out, "top-5 next tokens:", torch.topk(logits, 5).indices.tolist())


if __name__ == "__main__":
    main(*sys.argv[1:3])

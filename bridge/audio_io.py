"""Local audio for ``chatanyone stream``: play the speech in sync (``--play``), capture a microphone (``--mic``).

Both use ``sounddevice`` (PortAudio), an optional dependency: ``pip install 'chatanyone-bridge[live]'``
plus the PortAudio library (Debian: ``libportaudio2``). Without it, or without a device, the constructors
raise :class:`motion.errors.ChatAnyoneError` with a one-line message saying what is missing.

Sync: PortAudio reports, for every callback, when its first sample reaches the DAC (``outputBufferDacTime``)
or left the ADC (``inputBufferAdcTime``) on the stream's clock (``Stream.time``). We map that clock to
:func:`time.perf_counter` once at start, so

* :class:`AudioPlayer` writes sample ``n`` so that it is heard at ``t0 + n / rate`` (silence before
  ``t0``) - the same ``t0`` the pacer sends frame times against;
* :class:`MicSource` reports the capture time of its first sample (:attr:`MicSource.start_time`), which
  is audio time 0 of the live stream.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Iterator

import numpy as np

from motion.conventions import SAMPLE_RATE
from motion.errors import ChatAnyoneError

_HINT = "install the optional extra: pip install 'chatanyone-bridge[live]' (and the PortAudio library, Debian: libportaudio2)"


def import_sounddevice(option: str):
    """``import sounddevice``, or ChatAnyoneError naming ``option`` (``--play``/``--mic``) and the fix."""
    try:
        import sounddevice as sd
    except ImportError:
        raise ChatAnyoneError(f"{option} needs the sounddevice package; {_HINT}") from None
    except OSError as e:                  # sounddevice raises OSError when libportaudio is missing
        raise ChatAnyoneError(f"{option} needs the PortAudio library ({e}); {_HINT}") from None
    return sd


class AudioPlayer:
    """Play 16 kHz mono float32 ``samples`` so that sample 0 is heard at perf_counter time ``t0``.

    Args:
        samples: ``[N]`` float32 audio at ``rate`` Hz.
        rate: sample rate (default 16000).
        device: PortAudio output device (name or index; default: the system's).
    Raises:
        ChatAnyoneError: sounddevice/PortAudio missing, or no usable output device.
    """

    def __init__(self, samples: np.ndarray, rate: int = SAMPLE_RATE, device=None):
        self.sd = import_sounddevice("--play")
        self.samples = np.ascontiguousarray(samples, np.float32)
        self.rate = int(rate)
        self.device = device
        self._stream = None
        self._t0 = None
        self._offset = 0.0                # perf_counter - stream.time
        self.finished = threading.Event()

    def start(self, t0: float) -> None:
        """Open the output stream now; sample 0 plays at perf_counter time ``t0``.

        Raises:
            ChatAnyoneError: no output device or PortAudio refused the stream.
        """
        sd = self.sd
        self._t0 = float(t0)

        def callback(out, frames, info, status):  # PortAudio thread
            dac = info.outputBufferDacTime + self._offset
            first = int(round((dac - self._t0) * self.rate))
            out.fill(0)
            lo, hi = max(first, 0), min(first + frames, len(self.samples))
            if hi > lo:
                out[lo - first:hi - first, 0] = self.samples[lo:hi]
            if first >= len(self.samples):
                self.finished.set()
                raise sd.CallbackStop

        try:
            self._stream = sd.OutputStream(samplerate=self.rate, channels=1, dtype="float32",
                                           callback=callback, device=self.device, latency="low")
            self._offset = time.perf_counter() - self._stream.time
            self._stream.start()
        except (sd.PortAudioError, ValueError) as e:
            raise ChatAnyoneError(f"--play: no usable audio output device ({e})") from None

    def stop(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            finally:
                self._stream = None


class MicSource:
    """A live microphone as 16 kHz mono float32 chunks (iterate it; ``stop()`` ends the iteration).

    The device is opened at its default rate and resampled with ``soxr``'s streaming resampler.

    Args:
        device: PortAudio input device (name or index; default: the system's).
        block_s: chunk length in seconds (default 0.1).
    Raises:
        ChatAnyoneError: sounddevice/PortAudio missing, or no usable input device.
    """

    def __init__(self, device=None, block_s: float = 0.1):
        self.sd = import_sounddevice("--mic")
        sd = self.sd
        try:
            info = sd.query_devices(device, "input")
        except (sd.PortAudioError, ValueError) as e:
            raise ChatAnyoneError(f"--mic: no usable audio input device ({e})") from None
        self.rate = int(info["default_samplerate"])
        self.block = max(1, int(self.rate * block_s))
        self.device = device
        self._q: queue.Queue = queue.Queue(maxsize=200)
        self._stream = None
        self._stopped = threading.Event()
        #: perf_counter time of the first captured sample (audio time 0), set by the first chunk
        self.start_time: float | None = None
        self._first = threading.Event()
        self.overflows = 0

    def start(self) -> "MicSource":
        sd = self.sd
        offset = [0.0]

        def callback(indata, frames, info, status):  # PortAudio thread
            if status.input_overflow:
                self.overflows += 1
            if self.start_time is None:
                self.start_time = info.inputBufferAdcTime + offset[0]
                self._first.set()
            try:
                self._q.put_nowait(indata[:, 0].copy())
            except queue.Full:
                self.overflows += 1

        try:
            self._stream = sd.InputStream(samplerate=self.rate, channels=1, dtype="float32",
                                          blocksize=self.block, callback=callback, device=self.device)
            offset[0] = time.perf_counter() - self._stream.time
            self._stream.start()
        except (sd.PortAudioError, ValueError) as e:
            raise ChatAnyoneError(f"--mic: cannot open the audio input device ({e})") from None
        return self

    def wait_start(self) -> float:
        """Block until the first chunk arrived; its capture time (perf_counter seconds)."""
        self._first.wait()
        return float(self.start_time)

    def __iter__(self) -> Iterator[np.ndarray]:
        import soxr
        rs = None if self.rate == SAMPLE_RATE else soxr.ResampleStream(self.rate, SAMPLE_RATE, 1, dtype="float32")
        while not self._stopped.is_set():
            try:
                x = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            y = x if rs is None else rs.resample_chunk(x)
            if len(y):
                yield np.ascontiguousarray(y, np.float32)

    def stop(self) -> None:
        self._stopped.set()
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            finally:
                self._stream = None

// AudioWorklet: the microphone as Int16 PCM, mono, 16 kHz, in 100 ms chunks for the socket.
// The context usually runs at 16 kHz already; if the browser refused that rate, resample here
// (two one-pole low-passes against aliasing, then linear interpolation).

class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.target = opts.targetRate || 16000;
    this.chunk = Math.round((this.target * (opts.chunkMs || 100)) / 1000);
    this.step = sampleRate / this.target; // input samples per output sample
    const cutoff = 0.45 * this.target;
    this.alpha = this.step > 1 ? 1 - Math.exp((-2 * Math.PI * cutoff) / sampleRate) : 1;
    this.lp1 = 0;
    this.lp2 = 0;
    this.prev = 0; // last filtered input sample of the previous block
    this.t = 0; // position of the next output sample, in input samples from the block start
    this.out = new Int16Array(this.chunk);
    this.n = 0;
    this.sumSq = 0;
  }

  emit(value) {
    const v = Math.max(-1, Math.min(1, value));
    this.out[this.n++] = v < 0 ? v * 0x8000 : v * 0x7fff;
    this.sumSq += v * v;
    if (this.n === this.chunk) {
      const rms = Math.sqrt(this.sumSq / this.chunk);
      const pcm = this.out.buffer;
      this.port.postMessage({ pcm, rms }, [pcm]);
      this.out = new Int16Array(this.chunk);
      this.n = 0;
      this.sumSq = 0;
    }
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || !channels.length) return true;
    const input = channels[0];
    if (this.step === 1) {
      for (let i = 0; i < input.length; i++) this.emit(input[i]);
      return true;
    }
    const filtered = new Float32Array(input.length);
    for (let i = 0; i < input.length; i++) {
      this.lp1 += this.alpha * (input[i] - this.lp1);
      this.lp2 += this.alpha * (this.lp1 - this.lp2);
      filtered[i] = this.lp2;
    }
    // output sample positions t lie in [-1, L - 1): between input i and i + 1 (i = -1 is the
    // last sample of the previous block)
    const last = filtered.length - 1;
    while (this.t < last) {
      const i = Math.floor(this.t);
      const frac = this.t - i;
      const a = i < 0 ? this.prev : filtered[i];
      const b = filtered[i + 1];
      this.emit(a + (b - a) * frac);
      this.t += this.step;
    }
    this.t -= input.length;
    this.prev = filtered[filtered.length - 1];
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);

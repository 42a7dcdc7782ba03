// Runs in the benchmark page before anything else (a classic script): MediaRecorder replaced by one
// that replays a prepared recording faster than real time, and a page clock that keeps pace.
//
// `window.simulatedSource = { blob, ends, speed }` (set by the benchmark before start()): the
// recording's bytes, where each 1 s chunk ends, and how many seconds of audio one wall second
// replays. Every chunk is handed over as `dataavailable` (a Blob slice, as MediaRecorder hands
// Blobs) 1000/speed ms after the previous one; `window.simulatedDone` resolves once the last is out
// (the microphone ran dry; the recorder stays `recording` until stopped, as a real one would).
//
// The recorder measures recorded time with performance.now(), so performance.now() runs ahead by
// (1000 − 1000/speed) ms with each chunk handed over: recorded time then follows the audio, and
// the duration it declares matches what the route measures. `window.realNow()` is the real clock.
;(() => {
  const realNow = performance.now.bind(performance)
  let ahead = 0
  performance.now = () => realNow() + ahead
  window.realNow = realNow
  let markDone
  window.simulatedDone = new Promise((resolve) => (markDone = resolve))

  class SimulatedMediaRecorder extends EventTarget {
    static isTypeSupported(type) {
      return /^audio\/webm(\s*;\s*codecs="?opus"?)?$/i.test(String(type))
    }
    constructor(stream, options = {}) {
      super()
      this.stream = stream
      this.mimeType = options.mimeType || 'audio/webm;codecs=opus'
      this.audioBitsPerSecond = options.audioBitsPerSecond ?? 128000
      this.videoBitsPerSecond = 0
      this.state = 'inactive'
      for (const t of ['dataavailable', 'start', 'stop', 'pause', 'resume', 'error']) this['on' + t] = null
      this.next = 0
      this.timer = null
      this.origin = 0
    }
    fire(type, init) {
      const e = type === 'dataavailable' ? new BlobEvent(type, init) : new Event(type)
      this.dispatchEvent(e)
      this['on' + type]?.call(this, e)
    }
    get step() {
      return 1000 / window.simulatedSource.speed
    }
    schedule() {
      // Chunk n is due at origin + (n + 1) × step: lateness does not accumulate.
      const due = this.origin + (this.next + 1) * this.step
      this.timer = setTimeout(() => this.tick(), Math.max(0, due - realNow()))
    }
    tick() {
      const src = window.simulatedSource
      if (this.state !== 'recording') return
      const a = this.next ? src.ends[this.next - 1] : 0
      const b = src.ends[this.next]
      this.next++
      ahead += 1000 - this.step
      this.fire('dataavailable', { data: src.blob.slice(a, b, this.mimeType) })
      if (this.next < src.ends.length) this.schedule()
      else markDone()
    }
    start(timeslice) {
      if (this.state !== 'inactive') throw new DOMException('start() while not inactive', 'InvalidStateError')
      if (timeslice !== 1000) throw new Error('the simulated recorder hands over 1 s chunks: start(1000)')
      this.state = 'recording'
      this.origin = realNow()
      setTimeout(() => this.fire('start'))
      this.schedule()
    }
    pause() {
      if (this.state !== 'recording') return
      clearTimeout(this.timer)
      this.state = 'paused'
      setTimeout(() => this.fire('pause'))
    }
    resume() {
      if (this.state !== 'paused') return
      this.state = 'recording'
      this.origin = realNow() - this.next * this.step
      setTimeout(() => this.fire('resume'))
      if (this.next < window.simulatedSource.ends.length) this.schedule()
    }
    requestData() {}
    stop() {
      if (this.state === 'inactive') return
      clearTimeout(this.timer)
      this.state = 'inactive'
      // As MediaRecorder: a last dataavailable (here empty: chunks are whole seconds), then stop.
      setTimeout(() => {
        this.fire('dataavailable', { data: new Blob([], { type: this.mimeType }) })
        this.fire('stop')
      })
    }
  }
  window.MediaRecorder = SimulatedMediaRecorder
})()

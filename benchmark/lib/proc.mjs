// Child processes and what Linux says about them: every variant runs in its own process, so its
// CPU (utime + stime), RSS, peak RSS (VmHWM, resettable) and bytes read are read from /proc.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { benchDir } from './common.mjs'

/**
 * Start `benchmark/<script>`; `info` resolves with the first JSON line it prints (plus `readyMs`).
 * stdin stays open: the child exits when it ends.
 */
export function start(script, args = [], env = {}) {
  const child = spawn(process.execPath, [path.join(benchDir, script), ...args], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const t0 = performance.now()
  const info = new Promise((resolve, reject) => {
    let buf = ''
    child.stdout.on('data', (d) => {
      buf += d
      const nl = buf.indexOf('\n')
      if (nl >= 0) resolve({ ...JSON.parse(buf.slice(0, nl)), readyMs: performance.now() - t0 })
    })
    child.on('exit', (code) => reject(new Error(`${script} exited with ${code}`)))
  })
  return { child, info, t0 }
}
export const stop = (p) => p.child.kill('SIGTERM')

/** CPU seconds the process has used so far (user + system). */
export const procStat = (pid) => {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  const ticks = 100 // USER_HZ on Linux
  return (Number(f[11]) + Number(f[12])) / ticks // utime + stime, seconds
}
export const peakRssMiB = (pid) =>
  Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024
export const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024
export const resetPeak = (pid) => {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5') // resets VmHWM to the current RSS
  } catch {}
}
/** Bytes the process has read from any file or socket (`rchar`). */
export const rchar = (pid) => Number(/rchar:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/io`, 'utf8'))[1])

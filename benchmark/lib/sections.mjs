// Sections of BENCHMARKS.md that come from their own run (benchmark/recorder-stop.mjs), between
// markers: that run replaces its section, and `npm run bench` rewrites the rest of the file and
// keeps the section as it was, with the date, commit and machine state it was measured at.
export const RECORDER_BEGIN = '<!-- recorder-stop: written by benchmark/recorder-stop.mjs -->'
export const RECORDER_END = '<!-- /recorder-stop -->'
/** Where the section goes in a report that has none yet. */
const BEFORE = '## Cold start'

/** The section in `md` (markers included), or '' when it has none. */
export function keptSection(md) {
  const a = md.indexOf(RECORDER_BEGIN)
  const b = md.indexOf(RECORDER_END)
  return a >= 0 && b > a ? md.slice(a, b + RECORDER_END.length) : ''
}

/** `md` with its section replaced by `section` (or placed before the cold-start section, or appended). */
export function replaceSection(md, section) {
  const old = keptSection(md)
  if (old) return md.replace(old, () => section)
  const at = md.indexOf(BEFORE)
  if (at >= 0) return `${md.slice(0, at)}${section}\n\n${md.slice(at)}`
  return `${md}${md && !md.endsWith('\n') ? '\n' : ''}${md ? '\n' : ''}${section}\n`
}

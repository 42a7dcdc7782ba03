// A token-level edit of next.config.{ts,mjs,js}: adds 'session-audio' to `serverExternalPackages`
// and leaves every other byte as it was. No parser dependency (the published CLI has none): a small
// JavaScript/TypeScript tokenizer (strings, template literals, comments, regular expressions) finds
// the config object and the array. Handled shapes:
//   - an existing `serverExternalPackages: [ 'a', "b" ]` (string literals only): the name is added
//     after the last element (on its own line when the array is one entry per line);
//   - `export default { … }` and `module.exports = { … }` (also with `satisfies …`);
//   - `const|let|var <name>[: Type] = { … }` exported as `export default <name>`,
//     `module.exports = <name>`, or wrapped: `export default withPlugin(<name>)`;
// the property goes first in the object, on its own line when the object is one property a line.
// Anything else (a function config, a spread, a non-literal array, the old
// `experimental.serverComponentsExternalPackages`) is left alone: `addServerExternalPackage`
// answers `{ status: 'manual', why }` and the caller prints the line to add.

export const PACKAGE = 'session-audio'

const IDENT = /[A-Za-z0-9_$]/
// After these a `/` divides; anywhere else it starts a regular expression.
const ENDS_VALUE = new Set([')', ']', '}'])
const KEYWORDS_BEFORE_EXPR = new Set([
  'return',
  'typeof',
  'instanceof',
  'in',
  'of',
  'new',
  'delete',
  'void',
  'throw',
  'case',
  'do',
  'else',
  'yield',
  'await',
])

/** Tokens `{ type: 'ident'|'string'|'template'|'regex'|'number'|'punct', value, start, end }`, or throws. */
export function tokenize(src) {
  const tokens = []
  let i = 0
  const n = src.length
  const push = (type, start, end) => tokens.push({ type, value: src.slice(start, end), start, end })
  // Template literal nesting: each `${` pushes the brace depth it must return to.
  const templateStack = []
  let braceDepth = 0
  const readTemplate = (start) => {
    // `i` is just past a backtick or a closing `}` of `${…}`.
    while (i < n) {
      const c = src[i]
      if (c === '\\') i += 2
      else if (c === '`') {
        i++
        push('template', start, i)
        return
      } else if (c === '$' && src[i + 1] === '{') {
        i += 2
        push('template', start, i)
        templateStack.push(braceDepth)
        braceDepth++
        return
      } else i++
    }
    throw new Error('unterminated template literal')
  }
  while (i < n) {
    const c = src[i]
    if (/\s/.test(c)) {
      i++
      continue
    }
    if (c === '/' && src[i + 1] === '/') {
      while (i < n && src[i] !== '\n') i++
      continue
    }
    if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2)
      if (end < 0) throw new Error('unterminated comment')
      i = end + 2
      continue
    }
    const start = i
    if (c === '"' || c === "'") {
      i++
      while (i < n && src[i] !== c) {
        if (src[i] === '\\') i++
        else if (src[i] === '\n') throw new Error('unterminated string')
        i++
      }
      if (i >= n) throw new Error('unterminated string')
      i++
      push('string', start, i)
      continue
    }
    if (c === '`') {
      i++
      readTemplate(start)
      continue
    }
    if (c === '/') {
      const prev = tokens[tokens.length - 1]
      const division =
        prev &&
        ((prev.type === 'ident' && !KEYWORDS_BEFORE_EXPR.has(prev.value)) ||
          prev.type === 'number' ||
          prev.type === 'string' ||
          prev.type === 'regex' ||
          (prev.type === 'template' && prev.value.endsWith('`')) ||
          (prev.type === 'punct' && ENDS_VALUE.has(prev.value)))
      if (!division) {
        i++
        let inClass = false
        while (i < n) {
          const d = src[i]
          if (d === '\\') i += 2
          else if (d === '\n') throw new Error('unterminated regular expression')
          else {
            if (d === '[') inClass = true
            else if (d === ']') inClass = false
            else if (d === '/' && !inClass) break
            i++
          }
        }
        i++
        while (i < n && IDENT.test(src[i])) i++
        push('regex', start, i)
        continue
      }
    }
    if (/[0-9]/.test(c)) {
      while (i < n && /[0-9A-Za-z_.]/.test(src[i])) i++
      push('number', start, i)
      continue
    }
    if (IDENT.test(c)) {
      while (i < n && IDENT.test(src[i])) i++
      push('ident', start, i)
      continue
    }
    if (c === '{') braceDepth++
    if (c === '}') {
      if (templateStack.length && templateStack[templateStack.length - 1] === braceDepth - 1) {
        templateStack.pop()
        braceDepth--
        i++
        readTemplate(start)
        continue
      }
      braceDepth--
    }
    if (c === '.' && src.startsWith('...', i)) {
      i += 3
      push('punct', start, i)
      continue
    }
    i++
    push('punct', start, i)
  }
  if (templateStack.length) throw new Error('unterminated template literal')
  return tokens
}

const OPEN = { '(': ')', '[': ']', '{': '}' }

/** Index of the token closing the bracket at `open`, or -1. */
function matching(tokens, open) {
  const stack = []
  for (let k = open; k < tokens.length; k++) {
    const t = tokens[k]
    if (t.type === 'template') {
      // `${` opens a brace the tokenizer closes itself; a middle or end piece closes it.
      if (t.value.endsWith('${') && !t.value.startsWith('}')) stack.push('}')
      else if (t.value.startsWith('}') && !t.value.endsWith('${')) stack.pop()
      continue
    }
    if (t.type !== 'punct') continue
    if (OPEN[t.value]) stack.push(OPEN[t.value])
    else if (t.value === ')' || t.value === ']' || t.value === '}') {
      if (stack.pop() !== t.value) return -1
      if (!stack.length) return k
    }
  }
  return -1
}

const stringValue = (t) => (t.type === 'string' ? t.value.slice(1, -1) : null)
const lineStart = (src, pos) => src.lastIndexOf('\n', pos - 1) + 1
const indentAt = (src, pos) => /^[ \t]*/.exec(src.slice(lineStart(src, pos)))[0]
const newlineBetween = (src, a, b) => src.slice(a, b).includes('\n')

/** The quote the file prefers: that of its first string literal, else a single quote. */
function quoteOf(tokens) {
  const s = tokens.find((t) => t.type === 'string')
  return s ? s.value[0] : "'"
}

/** Whether the tokens from `from` to `to` (exclusive) are a plain list of string literals. */
function stringList(tokens, from, to) {
  const values = []
  let expectValue = true
  for (let k = from; k < to; k++) {
    const t = tokens[k]
    if (expectValue && t.type === 'string') {
      values.push(stringValue(t))
      expectValue = false
    } else if (!expectValue && t.type === 'punct' && t.value === ',') expectValue = true
    else return null
  }
  return values
}

/** The index of the `{` of the exported config object, or `{ why }`. */
function findConfigObject(tokens) {
  const at = (k, type, value) =>
    tokens[k] && tokens[k].type === type && (value === undefined || tokens[k].value === value)
  // Top-level `const|let|var name[: Type] = {` declarations.
  const declared = new Map()
  let depth = 0
  let exportStart = -1
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k]
    if (t.type === 'punct' && OPEN[t.value]) depth++
    else if (t.type === 'punct' && (t.value === ')' || t.value === ']' || t.value === '}')) depth--
    else if (t.type === 'template') {
      if (t.value.endsWith('${') && !t.value.startsWith('}')) depth++
      else if (t.value.startsWith('}') && !t.value.endsWith('${')) depth--
    }
    if (depth !== 0) continue
    if (t.type === 'ident' && ['const', 'let', 'var'].includes(t.value) && at(k + 1, 'ident')) {
      let j = k + 2
      if (at(j, 'punct', ':')) {
        // Skip the type annotation up to the `=` at this depth.
        let d = 0
        for (j++; j < tokens.length; j++) {
          const u = tokens[j]
          if (u.type === 'punct' && (OPEN[u.value] || u.value === '<')) d++
          else if (u.type === 'punct' && (u.value === ')' || u.value === ']' || u.value === '}' || u.value === '>')) d--
          else if (d === 0 && u.type === 'punct' && u.value === '=') break
        }
      }
      if (at(j, 'punct', '=') && at(j + 1, 'punct', '{')) declared.set(tokens[k + 1].value, j + 1)
    }
    if (at(k, 'ident', 'export') && at(k + 1, 'ident', 'default')) exportStart = k + 2
    if (at(k, 'ident', 'module') && at(k + 1, 'punct', '.') && at(k + 2, 'ident', 'exports') && at(k + 3, 'punct', '='))
      exportStart = k + 4
  }
  if (exportStart < 0) return { why: 'no `export default` or `module.exports =` found' }
  const first = tokens[exportStart]
  if (!first) return { why: 'nothing after the export' }
  if (first.type === 'punct' && first.value === '{') return { open: exportStart }
  if (first.type === 'ident' && declared.has(first.value) && !at(exportStart + 1, 'punct', '(')) {
    return { open: declared.get(first.value) }
  }
  // A wrapped export, `withPlugin(config)` or `withA(withB(config))`: the one declared object named in it.
  if (first.type === 'ident' && at(exportStart + 1, 'punct', '(')) {
    // `withA(withB(config))`, or curried: `withMDX()(config)`.
    let close = matching(tokens, exportStart + 1)
    while (close > 0 && at(close + 1, 'punct', '(')) close = matching(tokens, close + 1)
    const names = new Set()
    for (let k = exportStart + 2; k < close; k++) {
      const t = tokens[k]
      if (t.type === 'ident' && declared.has(t.value) && !at(k - 1, 'punct', '.')) names.add(t.value)
    }
    if (names.size === 1) return { open: declared.get([...names][0]) }
  }
  return { why: 'the exported config is not an object literal this tool can edit (a function, or built elsewhere)' }
}

/** Where `serverExternalPackages` appears as a property key: token indexes of the key. */
function propertyKeys(tokens, name) {
  const keys = []
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k]
    const isName = (t.type === 'ident' && t.value === name) || stringValue(t) === name
    if (!isName) continue
    const next = tokens[k + 1]
    const prev = tokens[k - 1]
    if (prev && prev.type === 'punct' && prev.value === '.') continue
    if (next && next.type === 'punct' && (next.value === ':' || next.value === ',' || next.value === '}')) keys.push(k)
  }
  return keys
}

/**
 * The edit for `src`: `{ status: 'present' }`, `{ status: 'edited', output }` or
 * `{ status: 'manual', why }`.
 */
export function addServerExternalPackage(src) {
  let tokens
  try {
    tokens = tokenize(src)
  } catch (e) {
    return { status: 'manual', why: `could not read the file (${e.message})` }
  }
  if (propertyKeys(tokens, 'serverComponentsExternalPackages').length) {
    return {
      status: 'manual',
      why: 'it uses `experimental.serverComponentsExternalPackages` (renamed `serverExternalPackages` in Next.js 15)',
    }
  }
  const keys = propertyKeys(tokens, 'serverExternalPackages')
  if (keys.length > 1) return { status: 'manual', why: '`serverExternalPackages` appears more than once' }
  if (keys.length === 1) {
    const k = keys[0]
    if (tokens[k + 1].value !== ':' || tokens[k + 2]?.value !== '[') {
      return { status: 'manual', why: '`serverExternalPackages` is not an array literal' }
    }
    const open = k + 2
    const close = matching(tokens, open)
    if (close < 0) return { status: 'manual', why: 'unbalanced brackets' }
    const values = stringList(tokens, open + 1, close)
    if (!values) return { status: 'manual', why: '`serverExternalPackages` holds something other than string literals' }
    if (values.includes(PACKAGE)) return { status: 'present' }
    const quote = tokens[open + 1]?.type === 'string' ? tokens[open + 1].value[0] : quoteOf(tokens)
    const literal = `${quote}${PACKAGE}${quote}`
    let pos
    let text
    if (values.length === 0) {
      pos = tokens[open].end
      text = literal
    } else {
      const lastValue = tokens[close - 1].value === ',' ? tokens[close - 2] : tokens[close - 1]
      const trailingComma = tokens[close - 1].value === ','
      const multiline = newlineBetween(src, tokens[open].end, tokens[open + 1].start)
      if (multiline) {
        const indent = indentAt(src, lastValue.start)
        pos = trailingComma ? tokens[close - 1].end : lastValue.end
        text = trailingComma ? `\n${indent}${literal},` : `,\n${indent}${literal}`
      } else {
        pos = lastValue.end
        text = `, ${literal}`
      }
    }
    return { status: 'edited', output: src.slice(0, pos) + text + src.slice(pos) }
  }
  const found = findConfigObject(tokens)
  if (found.why) return { status: 'manual', why: found.why }
  const open = found.open
  const close = matching(tokens, open)
  if (close < 0) return { status: 'manual', why: 'unbalanced brackets' }
  // A spread could bring its own `serverExternalPackages` and override ours.
  let d = 0
  for (let k = open + 1; k < close; k++) {
    const t = tokens[k]
    if (t.type === 'punct' && OPEN[t.value]) d++
    else if (t.type === 'punct' && (t.value === ')' || t.value === ']' || t.value === '}')) d--
    else if (d === 0 && t.type === 'punct' && t.value === '...') {
      return { status: 'manual', why: 'the config object spreads another object' }
    }
  }
  const q = quoteOf(tokens)
  const property = `serverExternalPackages: [${q}${PACKAGE}${q}],`
  const brace = tokens[open]
  let text
  if (close === open + 1) {
    const indent = indentAt(src, brace.start)
    text = newlineBetween(src, brace.end, tokens[close].start)
      ? `\n${indent}  ${property}`
      : `\n${indent}  ${property}\n${indent}`
  } else {
    // The first thing inside the braces (a comment counts): its line's indentation.
    const firstPos = src.slice(brace.end).search(/\S/) + brace.end
    text = newlineBetween(src, brace.end, firstPos) ? `\n${indentAt(src, firstPos)}${property}` : ` ${property}`
  }
  const output = src.slice(0, brace.end) + text + src.slice(brace.end)
  return { status: 'edited', output }
}

/** Whether `src` lists the package in `serverExternalPackages` (doctor's check). */
export function hasServerExternalPackage(src) {
  return addServerExternalPackage(src).status === 'present'
}

// The house's limits, checked on the files themselves (no addon, no build): the README stays a
// user's page (short, every section reachable from its table of contents), no link in the docs
// points at nothing, and the code stays in pieces a reader can hold: few files at the top of
// crates/core/src, no client file over 400 lines, no function over 120 lines. Every failure names
// the file (and the function) and its size, so the message alone says what to split.
import fs from 'node:fs'
import path from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const repo = path.resolve(__dirname, '..')
const read = (rel: string) => fs.readFileSync(path.join(repo, rel), 'utf8')

const README_MAX_LINES = 450
const CORE_SRC_MAX_FILES = 8
const CLIENT_FILE_MAX_LINES = 400
const FUNCTION_MAX_LINES = 120

/** Files under `dir` (relative to the repository), recursively, whose names end with `ext`. */
function walk(dir: string, ext: string): string[] {
  const out: string[] = []
  const visit = (rel: string) => {
    for (const entry of fs.readdirSync(path.join(repo, rel), { withFileTypes: true })) {
      const child = path.posix.join(rel, entry.name)
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules' && entry.name !== 'target') visit(child)
      } else if (entry.name.endsWith(ext)) out.push(child)
    }
  }
  visit(dir)
  return out.sort()
}

const lineCount = (text: string) => text.split('\n').length - (text.endsWith('\n') ? 1 : 0)

// ---------------------------------------------------------------------------------------------
// Masking: a copy of the source with every comment, string, character and regex literal blanked
// (newlines kept), so braces can be counted on what is left and line numbers still hold.
// ---------------------------------------------------------------------------------------------

const blank = (s: string) => s.replace(/[^\n]/g, ' ')

/**
 * Where the comment that starts at `i` ends (a line comment's newline stays code), or -1 when none
 * starts there. Rust's block comments nest; JavaScript's do not.
 */
function commentEnd(src: string, i: number, nested: boolean): number {
  if (src.startsWith('//', i)) {
    const end = src.indexOf('\n', i)
    return end === -1 ? src.length : end
  }
  if (!src.startsWith('/*', i)) return -1
  let depth = 0
  let j = i
  do {
    if (src.startsWith('/*', j) && (nested || depth === 0)) {
      depth++
      j += 2
    } else if (src.startsWith('*/', j)) {
      depth--
      j += 2
    } else j++
  } while (depth > 0 && j < src.length)
  return j
}

/** Rust: line comments, nested block comments, "…" and b"…", r#"…"# raw strings, 'c' and b'c' chars (not lifetimes). */
export function maskRust(src: string): string {
  let out = ''
  let i = 0
  const isIdent = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_]/.test(c)
  while (i < src.length) {
    const c = src[i]
    const next = src[i + 1]
    const comment = commentEnd(src, i, true)
    if (comment !== -1) {
      out += blank(src.slice(i, comment))
      i = comment
    } else if ((c === 'r' || (c === 'b' && next === 'r')) && !isIdent(src[i - 1])) {
      // A raw string r"…", r#"…"#, br#"…"#; anything else starting with r/br (an identifier, r#ident) is code.
      const m = /^b?r(#*)"/.exec(src.slice(i, i + 260))
      if (!m) {
        out += c
        i++
        continue
      }
      const close = `"${m[1]}`
      const end = src.indexOf(close, i + m[0].length)
      const stop = end === -1 ? src.length : end + close.length
      out += m[0] + blank(src.slice(i + m[0].length, stop - close.length)) + close
      i = stop
    } else if (c === '"') {
      let j = i + 1
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1
      out += `"${blank(src.slice(i + 1, j))}"`
      i = j + 1
    } else if (c === "'") {
      // A char literal is '\…' or one character then '; otherwise this is a lifetime or a label.
      let j = -1
      if (next === '\\') {
        j = i + 2
        if (src[j] === 'u' && src[j + 1] === '{') j = src.indexOf('}', j) + 1
        else j++
        while (j < src.length && src[j] !== "'" && src[j] !== '\n') j++
      } else {
        const cp = src.codePointAt(i + 1)
        const width = cp !== undefined && cp > 0xffff ? 2 : 1
        if (src[i + 1 + width] === "'" && next !== '\n') j = i + 1 + width
      }
      if (j > i && src[j] === "'") {
        out += `'${blank(src.slice(i + 1, j))}'`
        i = j + 1
      } else {
        out += c
        i++
      }
    } else {
      out += c
      i++
    }
  }
  return out
}

const REGEX_AFTER_WORD = new Set(
  'return typeof case do else in of new delete void throw instanceof yield await'.split(' '),
)

/**
 * JavaScript: comments, '…' and "…" strings, template literals (their text blanked, the code of
 * each `${…}` kept, the `${` and its `}` blanked), and regex literals (a `/` where an expression
 * may start: not after an identifier, a number, `)` or `]`).
 */
export function maskJs(src: string): string {
  let out = ''
  let i = 0
  // Open template expressions: for each, the depth of `{` inside it; 0 means the next `}` closes it.
  const templates: number[] = []
  const lastSignificant = () => {
    const m = /(\S+)\s*$/.exec(out)
    return m ? m[1] : ''
  }
  const template = () => {
    // At a backtick or just after a template expression's `}`: blank the text up to the closing
    // backtick, or up to the next `${` (then code again).
    let j = i
    while (j < src.length) {
      if (src[j] === '\\') j += 2
      else if (src[j] === '`') {
        out += blank(src.slice(i, j)) + '`'
        i = j + 1
        return
      } else if (src[j] === '$' && src[j + 1] === '{') {
        out += blank(src.slice(i, j + 2))
        i = j + 2
        templates.push(0)
        return
      } else j++
    }
    out += blank(src.slice(i))
    i = src.length
  }
  while (i < src.length) {
    const c = src[i]
    const comment = commentEnd(src, i, false)
    if (comment !== -1) {
      out += blank(src.slice(i, comment))
      i = comment
    } else if (c === '"' || c === "'") {
      let j = i + 1
      while (j < src.length && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1
      out += c + blank(src.slice(i + 1, j)) + c
      i = j + 1
    } else if (c === '`') {
      out += '`'
      i++
      template()
    } else if (c === '/') {
      const prev = lastSignificant()
      const last = prev.slice(-1)
      const division = /[A-Za-z0-9_$)\]]/.test(last) && !REGEX_AFTER_WORD.has(prev.replace(/^.*[^A-Za-z0-9_$]/, ''))
      if (division) {
        out += c
        i++
        continue
      }
      let j = i + 1
      let inClass = false
      while (j < src.length && src[j] !== '\n') {
        if (src[j] === '\\') j += 2
        else {
          if (src[j] === '[') inClass = true
          else if (src[j] === ']') inClass = false
          else if (src[j] === '/' && !inClass) break
          j++
        }
      }
      out += `/${blank(src.slice(i + 1, j))}/`
      i = j + 1
    } else if (c === '{' && templates.length) {
      templates[templates.length - 1]++
      out += c
      i++
    } else if (c === '}' && templates.length && templates[templates.length - 1] === 0) {
      templates.pop()
      out += ' '
      i++
      template()
    } else {
      if (c === '}' && templates.length) templates[templates.length - 1]--
      out += c
      i++
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Functions and their lengths, on masked text.
// ---------------------------------------------------------------------------------------------

export interface FunctionSpan {
  name: string
  line: number // 1-based, where it starts
  lines: number // from its first line to the line of its closing brace, both counted
}

const lineAt = (text: string, index: number) => {
  let n = 1
  for (let k = text.indexOf('\n'); k !== -1 && k < index; k = text.indexOf('\n', k + 1)) n++
  return n
}

/** The index of the `}` matching the `{` at `open`, or -1. */
function matchBrace(masked: string, open: number): number {
  let depth = 0
  for (let k = open; k < masked.length; k++) {
    if (masked[k] === '{') depth++
    else if (masked[k] === '}' && --depth === 0) return k
  }
  return -1
}

const RUST_FN =
  /^[ \t]*(?:#\[[^\]\n]*\][ \t]*)*(?:pub(?:\([^)\n]*\))?[ \t]+)?(?:(?:const|async|unsafe|extern(?:[ \t]+"[^"\n]*")?)[ \t]+)*fn[ \t]+((?:r#)?[A-Za-z_][A-Za-z0-9_]*)/gm

/** Every Rust function with a body: a line starting (after attributes, visibility and qualifiers) with `fn `. */
export function rustFunctions(src: string): FunctionSpan[] {
  const masked = maskRust(src)
  const spans: FunctionSpan[] = []
  for (const m of masked.matchAll(RUST_FN)) {
    // The body's `{`: the first one outside () and [] (a `;` there first means a declaration without body).
    let depth = 0
    let open = -1
    for (let k = m.index + m[0].length; k < masked.length; k++) {
      const ch = masked[k]
      if (ch === '(' || ch === '[') depth++
      else if (ch === ')' || ch === ']') depth--
      else if (depth === 0 && ch === ';') break
      else if (depth === 0 && ch === '{') {
        open = k
        break
      }
    }
    if (open === -1) continue
    const close = matchBrace(masked, open)
    if (close === -1) continue
    const line = lineAt(masked, m.index + m[0].indexOf('fn'))
    spans.push({ name: m[1], line, lines: lineAt(masked, close) - line + 1 })
  }
  return spans
}

const JS_NOT_METHODS = new Set(['if', 'for', 'while', 'switch', 'catch', 'with', 'function', 'return', 'typeof'])

/** The index just past the `)` matching the `(` at `open`, or -1. */
function pastParen(masked: string, open: number): number {
  let depth = 0
  for (let k = open; k < masked.length; k++) {
    if (masked[k] === '(') depth++
    else if (masked[k] === ')' && --depth === 0) return k + 1
  }
  return -1
}

/** Every JS function with a block body: `function` declarations and expressions, methods, `=> {` arrows. */
export function jsFunctions(src: string): FunctionSpan[] {
  const masked = maskJs(src)
  const spans: FunctionSpan[] = []
  const add = (name: string, start: number, open: number) => {
    const close = matchBrace(masked, open)
    if (close === -1) return
    const line = lineAt(masked, start)
    spans.push({ name, line, lines: lineAt(masked, close) - line + 1 })
  }
  const braceAfter = (k: number) => {
    const m = /^\s*\{/.exec(masked.slice(k, k + 200))
    return m ? k + m[0].length - 1 : -1
  }
  // `function name(…) {`, `function* (…) {`, `async function (…) {`.
  for (const m of masked.matchAll(/(?<![A-Za-z0-9_$.])function\b\s*\*?\s*([A-Za-z_$][A-Za-z0-9_$]*)?\s*\(/g)) {
    const past = pastParen(masked, m.index + m[0].length - 1)
    const open = past === -1 ? -1 : braceAfter(past)
    if (open !== -1) add(m[1] ?? '<function>', m.index, open)
  }
  // Methods: `name(…) {` where a member can start (after `{`, `}`, `,`, `;`, a line start, or
  // static/async/get/set/`*`), the name not a keyword that takes parentheses.
  for (const m of masked.matchAll(
    /(?:^|[{},;])\s*(?:(?:static|async|get|set)\s+|\*\s*)*(#?[A-Za-z_$][A-Za-z0-9_$]*)\s*\(/gm,
  )) {
    if (JS_NOT_METHODS.has(m[1])) continue
    const past = pastParen(masked, m.index + m[0].length - 1)
    const open = past === -1 ? -1 : braceAfter(past)
    if (open !== -1) add(m[1], m.index + m[0].indexOf(m[1]), open)
  }
  // Arrows with a block body, named after `name =` or `name:` before them on their line.
  for (const m of masked.matchAll(/=>\s*\{/g)) {
    const lineStart = masked.lastIndexOf('\n', m.index) + 1
    const before = masked.slice(lineStart, m.index)
    const name = /([A-Za-z_$][A-Za-z0-9_$]*)\s*[=:]\s*(?:async\b)?[^=:]*$/.exec(before)?.[1] ?? '<arrow>'
    add(name, m.index, m.index + m[0].length - 1)
  }
  return spans.sort((a, b) => a.line - b.line)
}

// ---------------------------------------------------------------------------------------------
// Markdown: headings, GitHub's anchors, links outside code.
// ---------------------------------------------------------------------------------------------

/** The text outside fenced code blocks and inline code, line for line. */
const prose = (md: string) => {
  let fenced = false
  return md
    .split('\n')
    .map((l) => {
      if (/^\s*```/.test(l)) {
        fenced = !fenced
        return ''
      }
      return fenced ? '' : l.replace(/`[^`]*`/g, '``')
    })
    .join('\n')
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
export const slug = (heading: string) =>
  heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\- _]/gu, '')
    .replace(/ /g, '-')

/** The headings of `level` (2 for `## `; 0 for every level), outside fenced code, as written. */
function headings(md: string, level = 0): string[] {
  const out: string[] = []
  let fenced = false
  for (const l of md.split('\n')) {
    if (/^\s*```/.test(l)) fenced = !fenced
    const m = fenced ? null : /^(#{1,6}) (.*)$/.exec(l)
    if (m && (level === 0 || m[1].length === level)) out.push(m[2])
  }
  return out
}

/** Each heading's anchor, with GitHub's -1, -2 … for repeats. */
function anchors(md: string): Set<string> {
  const seen = new Map<string, number>()
  const out = new Set<string>()
  for (const heading of headings(md)) {
    const base = slug(heading.replace(/`/g, ''))
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    out.add(n ? `${base}-${n}` : base)
  }
  return out
}

const links = (md: string) => [...prose(md).matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((m) => m[1])

const docs = () => ['README.md', ...walk('docs', '.md')]

// ---------------------------------------------------------------------------------------------

describe('the counters (on samples, so the counts below can be trusted)', () => {
  it('Rust: strings, chars, raw strings, comments and lifetimes do not move the braces', () => {
    const src = [
      '/// A doc comment with a brace {',
      '#[inline]',
      "pub(crate) async fn first<'a>(s: &'a str, n: [u8; 4]) -> &'a str {", // 3
      "    let open = '{';",
      "    let esc = '\\'';",
      "    let uni = '\\u{7b}';",
      '    let text = "}}} \\" {";',
      '    let raw = r#"a "quoted" } brace"#;',
      '    let bytes = b"}";',
      '    /* a block comment } /* nested { */ still a comment } */',
      "    'outer: loop { break 'outer; }",
      '    s',
      '}', // 13
      '',
      'trait T {',
      '    fn declared(&self) -> u8;',
      '    fn with_default(&self) -> u8 {', // 17
      '        1',
      '    }', // 19
      '}',
      'const unsafe extern "C" fn ffi() {}', // 21
      'fn r#type() {}', // 22: not a raw string
      'let not_a_fn = "fn nope() {";',
    ].join('\n')
    expect(rustFunctions(src)).toEqual([
      { name: 'first', line: 3, lines: 11 },
      { name: 'with_default', line: 17, lines: 3 },
      { name: 'ffi', line: 21, lines: 1 },
      { name: 'r#type', line: 22, lines: 1 },
    ])
  })

  it('JS: templates, regex literals, strings, comments; functions, methods and block arrows', () => {
    const src = [
      'export async function outer({ a, b } = {}, c = () => ({})) {', // 1
      '  const t = `text { ${a ? `inner ${ { x: 1 }.x } }` : "}"} more }`',
      '  const r = /[/{]\\/}/g.test(b) // a } in a comment',
      '  const d = a / 2 / b',
      '  const s = \'{\' + "}"',
      '  /* { */',
      '  return r && t && d && s',
      '}', // 8
      'class K {',
      '  static async make(x) {', // 10
      '    if (x) {',
      '      return x',
      '    }',
      '  }', // 14
      '  get size() {', // 15
      '    return 1',
      '  }', // 17
      '}',
      'const handler = async (req) => {', // 19
      '  return { ok: true }',
      '}', // 21
      'const obj = { method(a) { return a }, arrow: () => ({ a: 1 }) }', // 22
      'items.forEach((i) => {', // 23
      '  console.log(i)',
      '})', // 25
      'const f = function* () {}', // 26
    ].join('\n')
    expect(jsFunctions(src).map((f) => [f.name, f.line, f.lines])).toEqual([
      ['outer', 1, 8],
      ['make', 10, 5],
      ['size', 15, 3],
      ['handler', 19, 3],
      ['method', 22, 1],
      ['<arrow>', 23, 3],
      ['<function>', 26, 1],
    ])
  })

  it('Markdown: anchors as GitHub makes them, links outside code', () => {
    expect(slug('Vercel Blob credentials: OIDC, or a read-write token')).toBe(
      'vercel-blob-credentials-oidc-or-a-read-write-token',
    )
    expect(slug('The recorder (session-audio/client)')).toBe('the-recorder-session-audioclient')
    expect([...anchors('# A\n## B b\n```\n## not\n```\n## B b\n')]).toEqual(['a', 'b-b', 'b-b-1'])
    expect(links('[a](x.md) `[b](y.md)`\n```\n[c](z.md)\n```\n[d](#e)')).toEqual(['x.md', '#e'])
  })
})

describe('the README is a page for the user', () => {
  const readme = read('README.md')

  it(`has at most ${README_MAX_LINES} lines`, () => {
    const n = lineCount(readme)
    expect(n, `README.md has ${n} lines (at most ${README_MAX_LINES})`).toBeLessThanOrEqual(README_MAX_LINES)
  })

  it('links every ## section from its table of contents (the list before the first ## heading)', () => {
    const firstSection = readme.search(/^## /m)
    expect(firstSection, 'README.md has no ## section').toBeGreaterThan(0)
    const toc = new Set(links(readme.slice(0, firstSection)))
    const missing = headings(readme, 2).filter((s) => !toc.has(`#${slug(s.replace(/`/g, ''))}`))
    expect(missing, `README.md sections missing from the table of contents: ${missing.join('; ')}`).toEqual([])
  })

  it('links only to headings that exist in it', () => {
    const have = anchors(readme)
    const broken = links(readme).filter((l) => l.startsWith('#') && !have.has(l.slice(1)))
    expect(broken, `README.md links to missing headings: ${broken.join(', ')}`).toEqual([])
  })
})

describe('links between the documents', () => {
  it('every relative link in README.md and docs/*.md names a file that exists', () => {
    const broken: string[] = []
    for (const doc of docs()) {
      for (const link of links(read(doc))) {
        if (/^[a-z]+:/i.test(link) || link.startsWith('#')) continue
        const target = decodeURIComponent(link.split('#')[0])
        if (!fs.existsSync(path.join(repo, path.dirname(doc), target))) broken.push(`${doc} → ${link}`)
      }
    }
    expect(broken, `links to files that do not exist: ${broken.join('; ')}`).toEqual([])
  })
})

describe('the code stays in pieces a reader can hold', () => {
  it(`crates/core/src has at most ${CORE_SRC_MAX_FILES} files at its top level (folders do not count)`, () => {
    const files = fs
      .readdirSync(path.join(repo, 'crates/core/src'), { withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => e.name)
    expect(
      files.length,
      `crates/core/src has ${files.length} files at its top level (at most ${CORE_SRC_MAX_FILES}): ${files.join(', ')}`,
    ).toBeLessThanOrEqual(CORE_SRC_MAX_FILES)
  })

  it(`no file in client/ is over ${CLIENT_FILE_MAX_LINES} lines`, () => {
    const long = walk('client', '')
      .map((f) => ({ f, n: lineCount(read(f)) }))
      .filter(({ n }) => n > CLIENT_FILE_MAX_LINES)
      .map(({ f, n }) => `${f} (${n} lines)`)
    expect(long, `client files over ${CLIENT_FILE_MAX_LINES} lines: ${long.join(', ')}`).toEqual([])
  })

  it(`no function in crates/**/*.rs or client/**/*.mjs is over ${FUNCTION_MAX_LINES} lines`, () => {
    const long: string[] = []
    const check = (files: string[], find: (src: string) => FunctionSpan[]) => {
      for (const f of files) {
        for (const fn of find(read(f))) {
          if (fn.lines > FUNCTION_MAX_LINES) long.push(`${f}:${fn.line} ${fn.name} (${fn.lines} lines)`)
        }
      }
    }
    check(walk('crates', '.rs'), rustFunctions)
    check(walk('client', '.mjs'), jsFunctions)
    expect(long, `functions over ${FUNCTION_MAX_LINES} lines: ${long.join(', ')}`).toEqual([])
  })

  it("the JS counter agrees with TypeScript's parser on every function in client/", () => {
    // The parser's functions with a block body, each from its first line (an arrow's `=>`, as the
    // counter counts it) to the line of its body's `}`.
    let seen = 0
    for (const f of walk('client', '.mjs')) {
      const src = read(f)
      const file = ts.createSourceFile(f, src, ts.ScriptTarget.Latest, true, ts.ScriptKind.JS)
      const line = (pos: number) => file.getLineAndCharacterOfPosition(pos).line + 1
      const parsed: string[] = []
      const visit = (node: ts.Node) => {
        const body = (node as { body?: ts.Node }).body
        if (ts.isFunctionLike(node) && body && ts.isBlock(body)) {
          const start = line(ts.isArrowFunction(node) ? node.equalsGreaterThanToken.getStart() : node.getStart())
          parsed.push(`${start}+${line(body.end) - start + 1}`)
        }
        ts.forEachChild(node, visit)
      }
      visit(file)
      seen += parsed.length
      const counted = jsFunctions(src).map((fn) => `${fn.line}+${fn.lines}`)
      expect(counted.sort(), `${f}: line+length of each function`).toEqual(parsed.sort())
    }
    expect(seen).toBeGreaterThan(50)
  })

  it("the Rust counter agrees with rustfmt's layout: a function ends at the first `}` at its own indentation", () => {
    let seen = 0
    for (const f of walk('crates', '.rs')) {
      const src = read(f)
      const lines = src.split('\n')
      for (const fn of rustFunctions(src)) {
        seen++
        const first = lines[fn.line - 1]
        const indent = /^\s*/.exec(first)?.[0] ?? ''
        let end = /\{\s*\}\s*$/.test(first) ? fn.line : -1
        for (let k = fn.line; end === -1 && k < lines.length; k++) {
          if (lines[k].startsWith(`${indent}}`) && /^\}[),;]*$/.test(lines[k].slice(indent.length))) end = k + 1
        }
        expect(fn.lines, `${f}:${fn.line} ${fn.name}`).toBe(end - fn.line + 1)
      }
    }
    expect(seen).toBeGreaterThan(200)
  })

  it('the counters see the real files (so an empty result above means something)', () => {
    const rust = walk('crates', '.rs').flatMap((f) => rustFunctions(read(f)))
    const js = walk('client', '.mjs').flatMap((f) => jsFunctions(read(f)))
    expect(rust.length).toBeGreaterThan(200)
    expect(js.length).toBeGreaterThan(50)
    // Every masked file keeps its braces balanced: a string or regex the masker misread would not.
    for (const f of walk('crates', '.rs')) {
      const m = maskRust(read(f))
      expect(m.split('{').length, `${f}: braces unbalanced after masking`).toBe(m.split('}').length)
    }
    for (const f of walk('client', '.mjs')) {
      const m = maskJs(read(f))
      expect(m.split('{').length, `${f}: braces unbalanced after masking`).toBe(m.split('}').length)
    }
  })
})

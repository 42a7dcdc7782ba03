// A Node module customization hook (`module.register`, Node ≥ 20.6) for the Convex-compatible
// server's persistence. convex-test keeps its database in memory and does not export it; to save
// and restore documents with their ids and creation times we need its internal
// `getDbForComponent`. This hook adds that one export to convex-test's module as Node loads it,
// in memory: nothing is written into node_modules, and there is still one instance of the module
// (the AsyncLocalStorage it runs functions in is shared). If a convex-test upgrade renames the
// function, the load fails loudly and the restart test in __test__/local-stack.spec.ts says so.
const CONVEX_TEST = /\/node_modules\/convex-test\/dist\/index\.js$/

export async function load(url, context, nextLoad) {
  const loaded = await nextLoad(url, context)
  if (!CONVEX_TEST.test(url) || loaded.format !== 'module') return loaded
  const source = `${loaded.source}\nexport { getDbForComponent as __sessionAudioGetDb };\n`
  return { ...loaded, source, shortCircuit: true }
}

// The store on disk: every blob is a file under `root/<pathname>`, its metadata (access, type, size,
// etag, max-age) one entry of `root/.meta.json`, so a restarted store (`npm run demo`) serves what
// it held. Uploads are written under `root/.tmp` and renamed into place once complete, so an
// aborted upload never leaves a partial blob.
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'

/** The type a blob gets from its extension when the uploader names none. */
export const EXTENSION_TYPES = {
  '.webm': 'audio/webm',
  '.ogg': 'audio/ogg',
  '.mp3': 'audio/mpeg',
  '.m4a': 'audio/mp4',
  '.aac': 'audio/aac',
  '.wav': 'audio/wav',
  '.flac': 'audio/flac',
}

/** A blob URL (or a bare pathname) → its pathname. */
export const toPathname = (urlOrPathname) => {
  try {
    return decodeURIComponent(new URL(urlOrPathname).pathname.slice(1))
  } catch {
    return urlOrPathname
  }
}

export function openStore(root) {
  fs.mkdirSync(path.join(root, '.tmp'), { recursive: true })
  const metaFile = path.join(root, '.meta.json')
  const meta = new Map(fs.existsSync(metaFile) ? Object.entries(JSON.parse(fs.readFileSync(metaFile, 'utf8'))) : [])
  const save = () => fs.writeFileSync(metaFile, JSON.stringify(Object.fromEntries(meta)))
  const store = {
    root,
    meta,
    save,
    /** The server's own origin, known once it listens: blob URLs name it. */
    base: '',
    /** A fresh scratch file for an upload in progress. */
    tmpFile: () => path.join(root, '.tmp', crypto.randomUUID()),
    /** The head answer for a stored pathname (the list answer is a subset of it). */
    describe(pathname) {
      const m = meta.get(pathname)
      const url = `${store.base}/${pathname.split('/').map(encodeURIComponent).join('/')}`
      return {
        url,
        downloadUrl: `${url}?download=1`,
        pathname,
        size: m.size,
        contentType: m.contentType,
        contentDisposition: `attachment; filename="${path.basename(pathname)}"`,
        cacheControl: `public, max-age=${m.maxAge}`,
        uploadedAt: m.uploadedAt,
        etag: m.etag,
      }
    },
    /**
     * Move a finished upload into place and record it; returns what an upload answers. `maxAge`:
     * a presigned URL's cache max-age, which wins over the header.
     */
    commit(req, tmp, pathname, access, size, etag, maxAge) {
      const file = path.join(root, pathname)
      fs.mkdirSync(path.dirname(file), { recursive: true })
      fs.renameSync(tmp, file)
      meta.set(pathname, {
        access,
        contentType:
          req.headers['x-content-type'] || EXTENSION_TYPES[path.extname(pathname)] || 'application/octet-stream',
        size,
        uploadedAt: new Date().toISOString(),
        etag,
        maxAge: maxAge ?? Number(req.headers['x-cache-control-max-age'] || 2592000),
      })
      save()
      const d = store.describe(pathname)
      return {
        url: d.url,
        downloadUrl: d.downloadUrl,
        pathname,
        contentType: d.contentType,
        contentDisposition: d.contentDisposition,
        etag: d.etag,
      }
    },
    /** Forget a blob and its file (the caller saves the metadata once per batch). */
    remove(pathname) {
      if (!meta.has(pathname)) return
      meta.delete(pathname)
      fs.rmSync(path.join(root, pathname), { force: true })
    },
    list: () => [...meta.keys()].sort(),
    read: (pathname) => fs.readFileSync(path.join(root, pathname)),
  }
  return store
}

// A long recording shaped as Chromium's MediaRecorder writes it (timeslice, unknown-size Segment and
// Clusters, no Duration, no Cues), built from the real 20 s Chromium fixture: its header region,
// then its full clusters over and over with their Cluster Timecodes rewritten so time keeps
// increasing. The blocks are the fixture's own bytes (SimpleBlock times are relative to their
// cluster), so the route's duration meter, which reads Opus TOC bytes per block, measures the
// length built here. Also where each 1 s `dataavailable` chunk ends, as a recorder with
// `start(1000)` would hand them over.
import fs from 'node:fs'
import path from 'node:path'
import { opusPacketNs, readElementHeader } from '../../client/finalise/webm.mjs'
import { repo } from './common.mjs'

export const FIXTURE = path.join(repo, '__test__/fixtures/audio/chromium-20s-timeslice.webm')

const ID_CLUSTER = 0x1f43b675
const ID_TIMECODE = 0xe7
const ID_SIMPLE_BLOCK = 0xa3
/** Cluster ID + an 8-byte unknown size, as Chromium writes it. */
const CLUSTER_HEAD = Uint8Array.of(0x1f, 0x43, 0xb6, 0x75, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)

const header = (b, at) => {
  const h = readElementHeader(b, at)
  if (!h) throw new Error(`the fixture ends inside an element header at byte ${at}`)
  return { ...h, at, dataStart: at + h.headerLength }
}
const uint = (b, start, end) => b.subarray(start, end).reduce((v, x) => v * 256 + x, 0)

/**
 * The fixture's parts: `head` (EBML header, Segment header, Info, Tracks: everything before the
 * first Cluster), and its clusters as `{ timecode, body, blocks }` where `body` is everything after
 * the Cluster Timecode and `blocks` the relative time and offset (in `body`) of each SimpleBlock.
 */
export function readFixture(file = FIXTURE) {
  const b = new Uint8Array(fs.readFileSync(file))
  const ebml = header(b, 0)
  const segment = header(b, ebml.dataStart + ebml.size)
  let at = segment.dataStart
  let head = null
  const clusters = []
  while (at < b.length) {
    const el = header(b, at)
    if (el.id !== ID_CLUSTER) {
      if (el.size === null) throw new Error(`unknown-size element 0x${el.id.toString(16)} outside a cluster`)
      at = el.dataStart + el.size
      continue
    }
    head ??= b.slice(0, at)
    const tc = header(b, el.dataStart)
    if (tc.id !== ID_TIMECODE) throw new Error(`cluster at ${at} does not start with its Timecode`)
    const bodyStart = tc.dataStart + tc.size
    let p = bodyStart
    const blocks = []
    while (p < b.length) {
      const child = header(b, p)
      if (child.id === ID_CLUSTER) break
      if (child.id === ID_SIMPLE_BLOCK) {
        // Track number (a 1-byte vint for track 1), then the int16 time relative to the cluster.
        const rel = (((b[child.dataStart + 1] << 8) | b[child.dataStart + 2]) << 16) >> 16
        blocks.push({ rel, offset: p - bodyStart })
      }
      p = child.dataStart + child.size
    }
    clusters.push({ timecode: uint(b, tc.dataStart, tc.dataStart + tc.size), body: b.slice(bodyStart, p), blocks })
    at = p
  }
  return { head, clusters }
}

/**
 * `minutes` of audio: the fixture's full clusters (all but its last, shorter one) repeated, each
 * at `k × period` ms where `period` is the fixture's cluster spacing. Returns `{ bytes, chunkEnds,
 * durationMs }`: `chunkEnds[i]` is where the `i`-th 1 s chunk ends (the first holds the header),
 * cut where a new second starts, as Chromium cuts at block boundaries.
 */
export function longWebm(minutes, file = FIXTURE) {
  const { head, clusters } = readFixture(file)
  const full = clusters.slice(0, -1)
  const period = full[1].timecode - full[0].timecode
  for (let j = 1; j < full.length; j++)
    if (full[j].timecode - full[j - 1].timecode !== period)
      throw new Error('the fixture clusters are not evenly spaced')
  const count = Math.ceil((minutes * 60_000) / period)
  const sizes = full.map((c) => CLUSTER_HEAD.length + 6 + c.body.length)
  let total = head.length
  for (let k = 0; k < count; k++) total += sizes[k % full.length]
  const bytes = new Uint8Array(total)
  bytes.set(head, 0)
  let at = head.length
  const chunkEnds = []
  let nextSecond = 1000
  let lastBlockEnd = 0
  for (let k = 0; k < count; k++) {
    const c = full[k % full.length]
    const tc = k * period
    const clusterAt = at
    // A new second that starts with this cluster: the chunk ends before the cluster's header.
    const first = tc + (c.blocks[0]?.rel ?? 0)
    while (first >= nextSecond) {
      chunkEnds.push(clusterAt)
      nextSecond += 1000
    }
    bytes.set(CLUSTER_HEAD, at)
    at += CLUSTER_HEAD.length
    // Timecode as a 4-byte uint (30 min is past what the fixture's 2-byte one holds).
    bytes.set([ID_TIMECODE, 0x84, (tc >>> 24) & 0xff, (tc >>> 16) & 0xff, (tc >>> 8) & 0xff, tc & 0xff], at)
    at += 6
    const bodyAt = at
    bytes.set(c.body, at)
    at += c.body.length
    for (const blk of c.blocks) {
      while (tc + blk.rel >= nextSecond) {
        chunkEnds.push(bodyAt + blk.offset)
        nextSecond += 1000
      }
    }
    lastBlockEnd = tc + period
  }
  if (chunkEnds.at(-1) !== total) chunkEnds.push(total)
  return { bytes, chunkEnds, durationMs: lastBlockEnd }
}

/**
 * A recording of `clusters` tiny Clusters (past the finalisers' cap of 65 536 cue points in a few
 * MB): the fixture's header region, then Clusters of one SimpleBlock each, the fixture's smallest
 * block of its first Cluster (a real Opus packet, its relative time set to 0), each Cluster at
 * `k × packet length` ms, so blocks run on without a gap and the route's meter, which times every
 * packet by its TOC byte, measures the length built here. Returns `{ bytes, clusterStarts,
 * durationMs }`.
 */
export function tinyClusterWebm(clusters, file = FIXTURE) {
  const { head, clusters: parsed } = readFixture(file)
  const body = parsed[0].body
  let smallest = null
  for (const blk of parsed[0].blocks) {
    const h = header(body, blk.offset)
    if (!smallest || h.size < smallest.size) smallest = h
  }
  const block = body.slice(smallest.at, smallest.dataStart + smallest.size)
  const payloadAt = smallest.headerLength
  // Track number (a 1-byte vint for track 1), then the int16 relative time: 0 here.
  block[payloadAt + 1] = 0
  block[payloadAt + 2] = 0
  const packetMs = opusPacketNs(block[payloadAt + 4], block[payloadAt + 5]) / 1e6
  if (!Number.isInteger(packetMs)) throw new Error(`the fixture's packet lasts ${packetMs} ms, not whole ms`)
  const size = CLUSTER_HEAD.length + 6 + block.length
  const bytes = new Uint8Array(head.length + clusters * size)
  bytes.set(head, 0)
  const clusterStarts = []
  for (let k = 0, at = head.length; k < clusters; k++, at += size) {
    const tc = k * packetMs
    clusterStarts.push(at)
    bytes.set(CLUSTER_HEAD, at)
    bytes.set([ID_TIMECODE, 0x84, (tc >>> 24) & 0xff, (tc >>> 16) & 0xff, (tc >>> 8) & 0xff, tc & 0xff], at + 12)
    bytes.set(block, at + 18)
  }
  return { bytes, clusterStarts, durationMs: clusters * packetMs }
}

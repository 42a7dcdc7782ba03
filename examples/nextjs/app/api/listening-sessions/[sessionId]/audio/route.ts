import { handleAudioGet, handleAudioPost } from 'session-audio'
export const runtime = 'nodejs'
export const GET = handleAudioGet
export const POST = handleAudioPost

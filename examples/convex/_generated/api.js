/* Stand-in for the file `npx convex dev` generates; in your app, use the generated one. */
import { anyApi } from 'convex/server'

export const api = anyApi
export const internal = anyApi

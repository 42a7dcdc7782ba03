/* Stand-in for the file `npx convex dev` generates; in your app, use the generated one. */
import {
  actionGeneric,
  internalMutationGeneric,
  internalQueryGeneric,
  mutationGeneric,
  queryGeneric,
} from 'convex/server'

export const query = queryGeneric
export const mutation = mutationGeneric
export const action = actionGeneric
export const internalQuery = internalQueryGeneric
export const internalMutation = internalMutationGeneric

/* Stand-in for the file `npx convex dev` generates; in your app, use the generated one. */
import type { DataModelFromSchemaDefinition, MutationBuilder, QueryBuilder } from 'convex/server'
import type schema from '../schema'

export type DataModel = DataModelFromSchemaDefinition<typeof schema>
export declare const query: QueryBuilder<DataModel, 'public'>
export declare const mutation: MutationBuilder<DataModel, 'public'>
export declare const internalQuery: QueryBuilder<DataModel, 'internal'>
export declare const internalMutation: MutationBuilder<DataModel, 'internal'>

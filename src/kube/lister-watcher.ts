import type { KubeHttp } from './http.js'
import { listPage, type ListPage, type ListRequest } from './api.js'
import { openWatch, type WatchFrame, type WatchRequest } from './watch.js'

// client-go's ListerWatcher: what a reflector needs of one collection, and nothing of how it
// is reached. The HTTP one below is the apiserver; tests give the reflector a scripted one.

export type { ListPage, ListRequest, WatchFrame, WatchRequest }

export interface ListerWatcher {
  /** One page. A refusal is an ApiStatusError (410 when the continue token expired). */
  list(req: ListRequest): Promise<ListPage>
  /**
   * A watch from `req.resourceVersion`, with bookmarks. Rejects when refused (an
   * ApiStatusError: 410 when that resourceVersion is too old); the frames end when the server
   * ends the watch and throw when it is cut or `req.signal` aborts.
   */
  watch(req: WatchRequest): Promise<AsyncIterable<WatchFrame>>
}

/**
 * A collection of the API server at `path` (a function when the path may change between
 * requests, as a RuntimeClass source's moves to another version after a 404).
 */
export function httpListerWatcher(http: KubeHttp, path: string | (() => string)): ListerWatcher {
  const collection = typeof path === 'string' ? () => path : path
  return {
    list: (req) => listPage(http, collection(), req),
    watch: (req) => openWatch(http, collection(), req),
  }
}

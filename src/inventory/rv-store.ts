// What a cacheless reflector keeps of a collection: `name -> resourceVersion`, client-go's
// cache.Store with the objects left out (they live in the index only). Its Replace step,
// after a complete list, says which names are gone.

export class ResourceVersionStore {
  private readonly versions = new Map<string, string>()

  get size(): number {
    return this.versions.size
  }

  /**
   * Records `name` at `resourceVersion`. False when it is already there at that version (a
   * relist brings back every object; most have not changed): nothing to hand on.
   */
  update(name: string, resourceVersion: string): boolean {
    if (resourceVersion !== '' && this.versions.get(name) === resourceVersion) return false
    this.versions.set(name, resourceVersion)
    return true
  }

  /** Forgets `name`; false when it was not known. */
  delete(name: string): boolean {
    return this.versions.delete(name)
  }

  /** After a complete list of `listed` names: forgets, and returns, the names that are gone. */
  replace(listed: ReadonlySet<string>): string[] {
    const gone: string[] = []
    for (const name of this.versions.keys()) {
      if (listed.has(name)) continue
      this.versions.delete(name)
      gone.push(name)
    }
    return gone
  }
}

// The flags of a webhook started beside its caller (tests, the soak, the bench): HTTPS on a
// free loopback port, no metrics port, no shutdown delay unless asked. One list for all of them, so a
// flag the webhook comes to require reaches every harness at once. No imports: the bench
// passes these to the compiled dist/ webhook, without loading src/.

export const EXAMPLE_INVENTORY = 'examples/inventory.yaml'

export interface LocalWebhookFlags {
  /** The serving certificate and key files. */
  tls: { cert: string; key: string }
  /** The example inventory unless given; null for none (pass --kubeconfig in args). */
  inventoryFile?: string | null
  /** info unless given. */
  logLevel?: string
  /** 0s unless given. */
  shutdownDelay?: string
  /** More flags, after these. */
  args?: readonly string[]
}

export function localWebhookArgs(flags: LocalWebhookFlags): string[] {
  const inventory = flags.inventoryFile === undefined ? EXAMPLE_INVENTORY : flags.inventoryFile
  return [
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--metrics-port',
    '0',
    '--tls-cert',
    flags.tls.cert,
    '--tls-key',
    flags.tls.key,
    '--shutdown-delay',
    flags.shutdownDelay ?? '0s',
    '--log-level',
    flags.logLevel ?? 'info',
    ...(inventory === null ? [] : ['--inventory-file', inventory]),
    ...(flags.args ?? []),
  ]
}

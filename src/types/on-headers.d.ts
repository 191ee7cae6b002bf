// on-headers (a dependency of express-session) ships no types.
declare module 'on-headers' {
  import type { ServerResponse } from 'node:http'
  export default function onHeaders (res: ServerResponse, listener: (this: ServerResponse) => void): void
}

// Client-side routing, as a router would: every path is this one page.
export function describe(path) {
  return `route ${path}`;
}

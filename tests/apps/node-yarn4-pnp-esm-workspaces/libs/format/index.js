// A workspace that is an ES module package, on an ES module package from the registry.
import prettyBytes from "pretty-bytes";

export const size = (bytes) => `${bytes} bytes are ${prettyBytes(bytes)}`;

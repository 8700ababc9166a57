// The layer's public surface includes the shared Xen semantics (XenDomain, the dispositions,
// LayerOutcome): an embedder imports XenViridian alone.
@_exported import XenCore

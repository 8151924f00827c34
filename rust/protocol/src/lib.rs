//! Wire types and codecs of Nexus Physics: the JSON event envelope and the binary state stream.

//! The WebSocket gateway of Nexus Physics: a tokio thread bridged to the simulation by crossbeam channels.

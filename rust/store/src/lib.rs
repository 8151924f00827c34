//! Persistence of Nexus Physics campaigns.

//! Socket relays (`tcp://host:port`, `unix:///path`): pacer listens, workers dial in.

//! Small pieces the services share: the breaker per service (`breaker`), the TTL cache (`cache`),
//! the one capped read of an upstream's answer (`capped`), every "now" (`clock`), and one
//! completion per blob at a time (`turns`).

pub mod breaker;
pub mod cache;
pub mod capped;
pub mod clock;
pub mod turns;

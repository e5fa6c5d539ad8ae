//! # testkit: throwaway servers and the log conformance suite (being built).

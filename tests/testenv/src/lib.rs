//! A throwaway Kubernetes control plane and a node stand-in for end-to-end tests.

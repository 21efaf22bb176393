//! S3 storage: the backend over an S3 bucket with its index in etcd, shared by any number of
//! stateless servers, and the small etcd client it uses.

pub mod backend;
pub mod etcd;

//! Tests that span modules: the property tests over every parser of outside input.

mod proptests;

// Package store holds the shop's schema version.
package store

// Schema is the version migrate brings the database to.
const Schema = 7

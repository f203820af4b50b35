// Package feed is the store of the change feed (package changes): the
// outbox rows the ledger writes in the transaction of each change, which
// `billing relay` publishes and the sweep prunes. It is part of the store
// (package models) with a package of its own so that models stays one
// reading's size; its migration is models/migrations/00009_change_feed.sql.
package feed

import "time"

// Outbox is one change waiting for, or done with, its publication.
type Outbox struct {
	// Seq orders rows by insertion: the relay publishes in it.
	Seq        uint64 `gorm:"column:seq;primaryKey"`
	ID         string `gorm:"column:id"` // changes.Change.ID
	ObjectType string `gorm:"column:object_type"`
	ObjectID   string `gorm:"column:object_id"`
	ObjectSeq  uint64 `gorm:"column:object_seq"`
	RoutingKey string `gorm:"column:routing_key"`
	// Body is the message as published: changes.Change as JSON.
	Body        string     `gorm:"column:body"`
	CreatedAt   time.Time  `gorm:"column:created_at"`
	PublishedAt *time.Time `gorm:"column:published_at"`
}

// TableName implements gorm's tabler.
func (Outbox) TableName() string { return "change_outbox" }

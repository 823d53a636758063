package table

import (
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Item is one stored item as DynamoDB returns it.
type Item = map[string]types.AttributeValue

// Key is the primary key pk/sk.
func Key(pk, sk string) Item { return Item{AttrPK: S(pk), AttrSK: S(sk)} }

// S is a string value.
func S(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

// N is a number value.
func N(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// Bool is a boolean value.
func Bool(v bool) types.AttributeValue { return &types.AttributeValueMemberBOOL{Value: v} }

// B is a binary value.
func B(v []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }

// Millis is t as epoch milliseconds, the unit of times that conditions compare (leases, pauses, watermarks).
func Millis(t time.Time) types.AttributeValue { return N(t.UnixMilli()) }

// TTL is the `ttl` attribute's value for an item that may go at t: epoch seconds, as DynamoDB's TTL requires.
func TTL(t time.Time) int64 { return t.Unix() }

// TTLValue is TTL(t) as a number value, for expressions.
func TTLValue(t time.Time) types.AttributeValue { return N(TTL(t)) }

// FromMillis is the time of epoch milliseconds v, nil for 0 (not set).
func FromMillis(v int64) *time.Time {
	if v == 0 {
		return nil
	}
	t := time.UnixMilli(v).UTC()
	return &t
}

// StringOf is the string in av ("" when av is not a string).
func StringOf(av types.AttributeValue) string {
	v, _ := av.(*types.AttributeValueMemberS)
	if v == nil {
		return ""
	}
	return v.Value
}

// IntOf is the integer in av (0 when av is not a number or not an integer).
func IntOf(av types.AttributeValue) int64 {
	v, ok := av.(*types.AttributeValueMemberN)
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(v.Value, 10, 64)
	return n
}

// FormatTime is the stored form of the times items show (createdAt, updatedAt, ...): RFC 3339 in UTC with
// nanoseconds, readable in the console.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ParseTime reads a FormatTime string; anything else is the zero time.
func ParseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}

// TimePtr is ParseTime for optional times: nil for "".
func TimePtr(s string) *time.Time {
	if s == "" {
		return nil
	}
	t := ParseTime(s)
	return &t
}

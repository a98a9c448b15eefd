// Values and records: the data that travels on every edge of a sluice graph.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "sluice/permit.hpp"

namespace sluice {

// An immutable byte string shared by reference: copying a Bytes copies a pointer, never the
// payload. Used for HTTP bodies and other large blobs so that they are never copied between nodes.
class Bytes {
 public:
  Bytes() = default;
  explicit Bytes(std::string data) : data_(std::make_shared<const std::string>(std::move(data))) {}
  // Shares a buffer owned elsewhere: its shared_ptr decides what happens to the memory when the last
  // Bytes is gone (fetch returns body buffers to its pool that way).
  explicit Bytes(std::shared_ptr<const std::string> data) : data_(std::move(data)) {}

  std::string_view view() const { return data_ ? std::string_view(*data_) : std::string_view(); }
  std::size_t size() const { return data_ ? data_->size() : 0; }
  bool operator==(const Bytes& other) const { return view() == other.view(); }

 private:
  std::shared_ptr<const std::string> data_;
};

struct Value;
using List = std::vector<Value>;
// Named values in their order: a JSON object that parse.json took whole (an address, a variant's
// attributes), written out as the object it was.
using Object = std::vector<std::pair<std::string, Value>>;

// A typed field value: null, bool, int, double, string, bytes, a list of values or an object.
struct Value {
  using Variant = std::variant<std::monostate, bool, std::int64_t, double, std::string, Bytes, List, Object>;
  Variant v;

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : v(b) {}
  Value(int i) : v(std::int64_t{i}) {}
  Value(std::int64_t i) : v(i) {}
  Value(double d) : v(d) {}
  Value(const char* s) : v(std::string(s)) {}
  Value(std::string s) : v(std::move(s)) {}
  Value(Bytes b) : v(std::move(b)) {}
  Value(List l) : v(std::move(l)) {}
  Value(Object o) : v(std::move(o)) {}

  bool is_null() const { return std::holds_alternative<std::monostate>(v); }
  const bool* as_bool() const { return std::get_if<bool>(&v); }
  const std::int64_t* as_int() const { return std::get_if<std::int64_t>(&v); }
  const double* as_double() const { return std::get_if<double>(&v); }
  const std::string* as_string() const { return std::get_if<std::string>(&v); }
  const Bytes* as_bytes() const { return std::get_if<Bytes>(&v); }
  const List* as_list() const { return std::get_if<List>(&v); }
  const Object* as_object() const { return std::get_if<Object>(&v); }

  // The type name used in messages and docs: "null", "bool", "int", "double", "string", "bytes",
  // "list", "object".
  std::string_view type_name() const;
  // Text form for messages and comparisons: strings unquoted, lists and objects as JSON.
  std::string to_text() const;

  bool operator==(const Value& other) const { return v == other.v; }
};

// Where a record came from; carried unchanged by every node that derives records from it.
struct RecordMeta {
  std::string origin_url;    // the URL the record was fetched or derived from; empty for offline sources
  std::int32_t depth = 0;    // link depth from a seed (crawls)
  std::int32_t attempt = 0;  // fetch attempts so far
  std::uint64_t seq = 0;     // position in its source, starting at 0
};

// `text` with the credentials of every URL in it hidden, for messages, logs and reports:
// "scheme://user:secret@host" becomes "scheme://user:***@host", and "scheme://token@host" (a
// name alone is often a token) "scheme://***@host". Records keep their URLs as they are.
std::string hide_credentials(std::string text);

// An error attached to a record routed to an `error` port.
struct RecordError {
  std::string node;     // id of the node that failed
  std::string message;  // what went wrong, for a person
};

// One record: named fields in insertion order, metadata, and an optional attached error.
// Records are move-friendly; field values that can be large (Bytes) are shared, not copied.
class Record {
 public:
  using Field = std::pair<std::string, Value>;

  const Value* get(std::string_view name) const;
  Value* get(std::string_view name);
  // Sets a field, replacing an existing one of the same name in place.
  void set(std::string_view name, Value value);
  // Adds a field at the end without looking for one of the same name: only for a name the record
  // is known not to have (it would then hold two). For nodes that add many fields at once.
  void append(std::string_view name, Value value) { fields_.emplace_back(std::string(name), std::move(value)); }
  // Renames a field; returns false when `from` does not exist. Replaces an existing `to`.
  bool rename(std::string_view from, std::string_view to);
  bool erase(std::string_view name);

  const std::vector<Field>& fields() const { return fields_; }
  void reserve(std::size_t n) { fields_.reserve(n); }

  // A short description for error messages: the url field, else the origin URL, else the sequence number.
  std::string describe() const;

  RecordMeta meta;
  std::optional<RecordError> error;
  // Capacity held by this record and every record derived from it (copy them into derived records):
  // `permits` until they all have left the graph, `fetch_permits` until the record leaves the next
  // async node (a `limit` with `release: after_fetch`).
  std::vector<PermitRef> permits;
  std::vector<PermitRef> fetch_permits;

  // This record leaves the graph unprocessed (a graceful stop dropped it): what its permits cover is
  // not done, so a resumable run does not record it as done, and redoes it when resumed.
  void mark_unfinished() const { sluice::mark_unfinished(permits); }

  // A new record that inherits this record's metadata and permits, with no fields.
  Record derive() const {
    Record r;
    r.meta = meta;
    r.permits = permits;
    r.fetch_permits = fetch_permits;
    return r;
  }

 private:
  std::vector<Field> fields_;
};

}  // namespace sluice

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include "io/pickle.h"

namespace graft::pickle {

namespace {

using T = PValue::Type;

const std::map<std::string, c10::ScalarType>& storage_types() {
  static const std::map<std::string, c10::ScalarType> m = {
      {"FloatStorage", c10::kFloat},   {"DoubleStorage", c10::kDouble},
      {"HalfStorage", c10::kHalf},     {"BFloat16Storage", c10::kBFloat16},
      {"LongStorage", c10::kLong},     {"IntStorage", c10::kInt},
      {"ShortStorage", c10::kShort},   {"CharStorage", c10::kChar},
      {"ByteStorage", c10::kByte},     {"BoolStorage", c10::kBool},
      {"ComplexFloatStorage", c10::kComplexFloat}, {"ComplexDoubleStorage", c10::kComplexDouble},
  };
  return m;
}

// What a data-only reader may name. Anything else is refused the moment it is read.
bool allowed_global(const std::string& module, const std::string& name) {
  if (module == "collections" && name == "OrderedDict") return true;
  if (module == "torch._utils" &&
      (name == "_rebuild_tensor_v2" || name == "_rebuild_tensor" || name == "_rebuild_parameter" ||
       name == "_rebuild_parameter_with_state"))
    return true;
  if (module == "torch" && name == "Size") return true;
  if ((module == "torch" || module == "torch.cuda") && storage_types().count(name)) return true;
  return false;
}

[[noreturn]] void refuse_global(const std::string& module, const std::string& name) {
  const std::string full = module + "." + name;
  const bool is_class = !name.empty() && std::isupper(static_cast<unsigned char>(name[0]));
  if (is_class && module != "builtins" && module != "__builtin__")
    throw std::runtime_error("holds a pickled Python object `" + full +
                             "`; save `model.state_dict()` instead (graft loads data only: tensors, containers, "
                             "numbers, strings)");
  throw std::runtime_error("refused: the pickle names the Python global `" + full +
                           "`, which a data-only load never runs (only tensors, containers, numbers and strings "
                           "are read)");
}

// How deep a value may nest, and how many values it may expand to once shared references
// (memo GETs, DUP) are copied out (a million, or 4 per byte of input for larger files): a
// few hundred bytes of pickle can otherwise describe a list that holds itself or a tree of
// 2^40 values.
constexpr std::size_t kMaxDepth = 1000;
constexpr std::uint64_t kMinValueBudget = 1'000'000;

class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size, std::size_t& pos, const std::function<P(const P&)>& persistent)
      : data_(data), size_(size), pos_(pos), persistent_(persistent),
        max_values_(std::max<std::uint64_t>(kMinValueBudget, 4 * static_cast<std::uint64_t>(size))) {}
  // Breaks every reference among the containers that the result does not hold (all of them
  // when reading failed): a cycle would leak, and a deep chain would be freed recursively.
  ~Reader() {
    for (const auto& c : containers_) {
      if (kept_.count(c.get())) continue;
      c->items.clear();
      c->entries.clear();
    }
  }

  P run();

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("malformed pickle at byte " + std::to_string(pos_) + ": " + what);
  }
  void need(std::size_t n) const {
    if (n > size_ - pos_) throw std::runtime_error("truncated file: the pickle ends early (byte " + std::to_string(pos_) + ")");
  }
  std::uint8_t u8() {
    need(1);
    return data_[pos_++];
  }
  template <class U> U le() {
    need(sizeof(U));
    U v;
    std::memcpy(&v, data_ + pos_, sizeof(U));
    pos_ += sizeof(U);
    return v;
  }
  std::string bytes(std::size_t n) {
    need(n);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  std::string line() {
    std::string s;
    for (;;) {
      const char c = static_cast<char>(u8());
      if (c == '\n') return s;
      s += c;
    }
  }

  P pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) fail("stack underflow");
    P v = stack_.back();
    stack_.pop_back();
    return v;
  }
  P& top() {
    if (stack_.empty()) fail("stack underflow");
    return stack_.back();
  }
  std::vector<P> pop_mark() {
    if (marks_.empty()) fail("no MARK");
    const std::size_t m = marks_.back();
    marks_.pop_back();
    if (m > stack_.size()) fail("bad MARK");
    std::vector<P> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }
  void push(P v) { stack_.push_back(std::move(v)); }
  P container(T type) {
    containers_.push_back(PValue::make(type));
    return containers_.back();
  }
  P tuple(std::vector<P> items) {
    auto t = container(T::tuple);
    t->items = std::move(items);
    return t;
  }
  std::uint64_t check_value(const P& v, std::size_t level, std::unordered_map<const PValue*, std::pair<std::uint64_t, std::size_t>>& seen);
  P string_value(std::string s, T type = T::string) {
    auto v = PValue::make(type);
    v->s = std::move(s);
    return v;
  }
  P int_value(std::int64_t i) {
    auto v = PValue::make(T::integer);
    v->i = i;
    return v;
  }
  P long_value(const std::string& raw) {  // little-endian two's complement
    if (raw.empty()) return int_value(0);
    if (raw.size() > 8) return string_value(raw, T::bigint);
    std::uint64_t u = 0;
    for (std::size_t k = 0; k < raw.size(); ++k) u |= static_cast<std::uint64_t>(static_cast<std::uint8_t>(raw[k])) << (8 * k);
    if (raw.size() < 8 && (static_cast<std::uint8_t>(raw.back()) & 0x80)) u |= ~std::uint64_t(0) << (8 * raw.size());
    return int_value(static_cast<std::int64_t>(u));
  }
  void set_items(P& dict, const std::vector<P>& kv) {
    if (dict->type != T::dict) fail("SETITEMS on a non-dict");
    if (kv.size() % 2) fail("odd number of items for a dict");
    for (std::size_t k = 0; k < kv.size(); k += 2) {
      bool replaced = false;
      for (auto& e : dict->entries) {
        if (e.first->type == kv[k]->type && e.first->s == kv[k]->s && e.first->i == kv[k]->i &&
            (kv[k]->type == T::string || kv[k]->type == T::integer)) {
          e.second = kv[k + 1];
          replaced = true;
        }
      }
      if (!replaced) dict->entries.emplace_back(kv[k], kv[k + 1]);
    }
  }
  P call(const P& callable, const P& args);
  P global(const std::string& module, const std::string& name) {
    if (!allowed_global(module, name)) refuse_global(module, name);
    auto g = string_value(module + "." + name, T::global);
    return g;
  }

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t& pos_;
  const std::function<P(const P&)>& persistent_;
  std::vector<P> stack_;
  std::vector<std::size_t> marks_;
  std::unordered_map<std::uint64_t, P> memo_;
  std::uint64_t max_values_;
  std::vector<P> containers_;                   // every list, tuple and dict made
  std::unordered_map<const PValue*, std::pair<std::uint64_t, std::size_t>> kept_;  // in the result
};

// The number of values `v` expands to, each shared one counted where it is used; checks
// that it nests at most kMaxDepth deep (a value holding itself nests without end). `seen`
// memoises (values, height) per container, so a shared subtree is walked once.
std::uint64_t Reader::check_value(const P& v, std::size_t level,
                                  std::unordered_map<const PValue*, std::pair<std::uint64_t, std::size_t>>& seen) {
  if (v->items.empty() && v->entries.empty()) return 1;
  const auto found = seen.find(v.get());
  if (found != seen.end()) {
    if (found->second.first == 0) fail("a container holds itself (corrupt file?)");
    if (level + found->second.second > kMaxDepth) fail("values nest more than " + std::to_string(kMaxDepth) + " deep");
    return found->second.first;
  }
  if (level > kMaxDepth) fail("values nest more than " + std::to_string(kMaxDepth) + " deep");
  seen[v.get()] = {0, 0};  // in progress
  std::uint64_t values = 1;
  std::size_t height = 0;
  auto add = [&](const P& child) {
    values = std::min(values + check_value(child, level + 1, seen), max_values_ + 1);
    if (const auto it = seen.find(child.get()); it != seen.end()) height = std::max(height, it->second.second + 1);
    else height = std::max<std::size_t>(height, 1);
  };
  for (const auto& i : v->items) add(i);
  for (const auto& e : v->entries) {
    add(e.first);
    add(e.second);
  }
  seen[v.get()] = {values, height};
  return values;
}

std::vector<std::int64_t> int_tuple(const P& v, const char* what) {
  if (v->type != T::tuple && v->type != T::list) throw std::runtime_error(std::string("malformed tensor: ") + what);
  std::vector<std::int64_t> out;
  for (const auto& x : v->items) {
    if (x->type != T::integer) throw std::runtime_error(std::string("malformed tensor: ") + what);
    out.push_back(x->i);
  }
  return out;
}

P Reader::call(const P& callable, const P& args) {
  if (callable->type != T::global) fail("REDUCE of something that is not a callable global");
  if (args->type != T::tuple) fail("REDUCE arguments are not a tuple");
  const std::string& f = callable->s;
  const auto& a = args->items;
  if (f == "collections.OrderedDict") {
    auto d = container(T::dict);
    if (!a.empty()) fail("OrderedDict with arguments");
    return d;
  }
  if (f == "torch.Size") {
    if (a.size() != 1) fail("torch.Size arguments");
    return tuple(a[0]->items);
  }
  if (f == "torch._utils._rebuild_tensor_v2" || f == "torch._utils._rebuild_tensor") {
    if (a.size() < 4 || a[0]->type != T::storage || a[1]->type != T::integer) fail("_rebuild_tensor arguments");
    auto t = PValue::make(T::tensor);
    t->storage = a[0];
    t->offset = a[1]->i;
    t->sizes = int_tuple(a[2], "sizes");
    t->strides = int_tuple(a[3], "strides");
    if (t->sizes.size() != t->strides.size()) fail("tensor sizes and strides differ in length");
    if (a.size() > 4 && a[4]->type == T::boolean) t->requires_grad = a[4]->b;
    return t;
  }
  if (f == "torch._utils._rebuild_parameter" || f == "torch._utils._rebuild_parameter_with_state") {
    if (a.size() < 2 || a[0]->type != T::tensor) fail("_rebuild_parameter arguments");
    auto t = std::make_shared<PValue>(*a[0]);
    t->requires_grad = a[1]->type == T::boolean && a[1]->b;
    return t;
  }
  fail("cannot call " + f);
}

P Reader::run() {
  for (;;) {
    const std::uint8_t op = u8();
    switch (op) {
      case 0x80: u8(); break;                                    // PROTO
      case 0x95: le<std::uint64_t>(); break;                     // FRAME
      case '.': {                                                // STOP
        if (stack_.size() != 1) fail("stack holds " + std::to_string(stack_.size()) + " values at STOP");
        std::unordered_map<const PValue*, std::pair<std::uint64_t, std::size_t>> seen;
        if (check_value(stack_.back(), 0, seen) > max_values_)
          fail("the pickle expands to more than " + std::to_string(max_values_) + " values (shared references)");
        kept_ = std::move(seen);
        return stack_.back();
      }
      case '(': marks_.push_back(stack_.size()); break;          // MARK
      case '0': pop(); break;                                    // POP
      case '1': pop_mark(); break;                               // POP_MARK
      case '2': push(top()); break;                              // DUP
      case 'N': push(PValue::make(T::none)); break;              // NONE
      case 0x88: case 0x89: {                                    // NEWTRUE, NEWFALSE
        auto v = PValue::make(T::boolean);
        v->b = op == 0x88;
        push(v);
        break;
      }
      case 'J': push(int_value(le<std::int32_t>())); break;      // BININT
      case 'K': push(int_value(le<std::uint8_t>())); break;      // BININT1
      case 'M': push(int_value(le<std::uint16_t>())); break;     // BININT2
      case 0x8a: push(long_value(bytes(u8()))); break;           // LONG1
      case 0x8b: {                                               // LONG4
        const auto n = le<std::int32_t>();
        if (n < 0) fail("negative LONG4 size");
        push(long_value(bytes(static_cast<std::size_t>(n))));
        break;
      }
      case 'I': {                                                // INT (text)
        const std::string s = line();
        if (s == "01" || s == "00") {
          auto v = PValue::make(T::boolean);
          v->b = s == "01";
          push(v);
        } else {
          try { push(int_value(std::stoll(s))); } catch (...) { fail("bad INT"); }
        }
        break;
      }
      case 'L': {                                                // LONG (text)
        std::string s = line();
        if (!s.empty() && s.back() == 'L') s.pop_back();
        try { push(int_value(std::stoll(s))); } catch (...) { fail("LONG too large"); }
        break;
      }
      case 'G': {                                                // BINFLOAT (big-endian)
        std::uint64_t u = 0;
        for (int k = 0; k < 8; ++k) u = (u << 8) | u8();
        double d;
        std::memcpy(&d, &u, 8);
        auto v = PValue::make(T::real);
        v->d = d;
        push(v);
        break;
      }
      case 'F': {                                                // FLOAT (text)
        auto v = PValue::make(T::real);
        try { v->d = std::stod(line()); } catch (...) { fail("bad FLOAT"); }
        push(v);
        break;
      }
      case 'X': push(string_value(bytes(le<std::uint32_t>()))); break;          // BINUNICODE
      case 0x8c: push(string_value(bytes(u8()))); break;                         // SHORT_BINUNICODE
      case 0x8d: push(string_value(bytes(le<std::uint64_t>()))); break;          // BINUNICODE8
      case 'T': push(string_value(bytes(le<std::uint32_t>()))); break;          // BINSTRING (py2 str)
      case 'U': push(string_value(bytes(u8()))); break;                          // SHORT_BINSTRING
      case 'B': push(string_value(bytes(le<std::uint32_t>()), T::bytes)); break; // BINBYTES
      case 'C': push(string_value(bytes(u8()), T::bytes)); break;                // SHORT_BINBYTES
      case 0x8e: push(string_value(bytes(le<std::uint64_t>()), T::bytes)); break;
      case 'V': push(string_value(line())); break;                               // UNICODE (raw-unicode-escape)
      case 'S': {                                                                // STRING (repr)
        std::string s = line();
        if (s.size() >= 2 && (s.front() == '\'' || s.front() == '"')) s = s.substr(1, s.size() - 2);
        push(string_value(s));
        break;
      }
      case ')': push(tuple({})); break;                                          // EMPTY_TUPLE
      case 't': push(tuple(pop_mark())); break;                                  // TUPLE
      case 0x85: { auto a = pop(); push(tuple({a})); break; }                    // TUPLE1
      case 0x86: { auto b = pop(); auto a = pop(); push(tuple({a, b})); break; } // TUPLE2
      case 0x87: { auto c = pop(); auto b = pop(); auto a = pop(); push(tuple({a, b, c})); break; }
      case ']': push(container(T::list)); break;                                 // EMPTY_LIST
      case 'l': { auto l = container(T::list); l->items = pop_mark(); push(l); break; }  // LIST
      case '}': push(container(T::dict)); break;                                 // EMPTY_DICT
      case 'd': { auto d = container(T::dict); set_items(d, pop_mark()); push(d); break; }  // DICT
      case 'a': {                                                                // APPEND
        auto v = pop();
        if (top()->type != T::list) fail("APPEND to a non-list");
        top()->items.push_back(v);
        break;
      }
      case 'e': {                                                                // APPENDS
        auto items = pop_mark();
        if (top()->type != T::list) fail("APPENDS to a non-list");
        for (auto& v : items) top()->items.push_back(v);
        break;
      }
      case 's': { auto v = pop(); auto k = pop(); set_items(top(), {k, v}); break; }  // SETITEM
      case 'u': { auto kv = pop_mark(); set_items(top(), kv); break; }               // SETITEMS
      case 'q': memo_[u8()] = top(); break;                                          // BINPUT
      case 'r': memo_[le<std::uint32_t>()] = top(); break;                           // LONG_BINPUT
      case 0x94: { const auto n = memo_.size(); memo_[n] = top(); break; }                                 // MEMOIZE
      case 'p': {                                                                    // PUT
        const std::string key = line();
        try { memo_[std::stoull(key)] = top(); } catch (const std::logic_error&) { fail("bad PUT"); }
        break;
      }
      case 'h': case 'j': case 'g': {                                                // BINGET, LONG_BINGET, GET
        std::uint64_t idx = 0;
        if (op == 'h') idx = u8();
        else if (op == 'j') idx = le<std::uint32_t>();
        else try { idx = std::stoull(line()); } catch (...) { fail("bad GET"); }
        const auto it = memo_.find(idx);
        if (it == memo_.end()) fail("memo key " + std::to_string(idx) + " missing");
        push(it->second);
        break;
      }
      case 'c': {                                                                    // GLOBAL
        const std::string module = line();
        const std::string name = line();
        push(global(module, name));
        break;
      }
      case 0x93: {                                                                   // STACK_GLOBAL
        auto name = pop();
        auto module = pop();
        if (module->type != T::string || name->type != T::string) fail("STACK_GLOBAL of non-strings");
        push(global(module->s, name->s));
        break;
      }
      case 'R': { auto args = pop(); auto f = pop(); push(call(f, args)); break; }  // REDUCE
      case 0x81: { auto args = pop(); auto cls = pop(); push(call(cls, args)); break; }  // NEWOBJ
      case 'b': {                                                                    // BUILD
        auto state = pop();
        // OrderedDict's state is the state dict's `_metadata` (format versions); a
        // parameter's is its Python attributes. Neither is data graft uses.
        if (top()->type != T::dict && top()->type != T::tensor) fail("BUILD on an unsupported object");
        break;
      }
      case 'Q': { auto pid = pop(); push(persistent_(pid)); break; }                // BINPERSID
      case 'P': push(persistent_(string_value(line()))); break;                      // PERSID
      case 'i': case 'o': case 0x92: case 0x82: case 0x83: case 0x84:
        fail("object-building opcode 0x" + [&] { char b[3]; std::snprintf(b, 3, "%02x", op); return std::string(b); }() +
             " is not allowed in a data-only load");
      default: {
        char b[3];
        std::snprintf(b, 3, "%02x", op);
        fail(std::string("unknown opcode 0x") + b);
      }
    }
  }
}

}  // namespace

bool storage_dtype(const std::string& name, c10::ScalarType& out) {
  const auto it = storage_types().find(name);
  if (it == storage_types().end()) return false;
  out = it->second;
  return true;
}

std::string storage_name(c10::ScalarType dtype) {
  for (const auto& [name, t] : storage_types())
    if (t == dtype) return name;
  throw std::runtime_error(std::string("no PyTorch storage type for dtype ") + c10::toString(dtype));
}

P unpickle(const std::uint8_t* data, std::size_t size, std::size_t& pos,
           const std::function<P(const P&)>& persistent_load) {
  return Reader(data, size, pos, persistent_load).run();
}

}  // namespace graft::pickle

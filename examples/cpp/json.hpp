// A small JSON reader and writer for the gateway example: enough for one request or response per
// line, with no dependency beyond the standard library. Numbers keep their text, so that an
// embedding value is converted with strtof exactly as written (a float printed in shortest form
// reads back bit for bit).
#ifndef POINTSMAN_EXAMPLE_JSON_HPP
#define POINTSMAN_EXAMPLE_JSON_HPP

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace json {

struct Value {
  enum class Type { Null, Bool, Number, String, Array, Object } type = Type::Null;
  bool boolean = false;
  std::string text;  // a string's value, or a number's text
  std::vector<Value> items;
  std::map<std::string, Value> fields;

  bool is_number() const { return type == Type::Number; }
  double number() const { return std::strtod(text.c_str(), nullptr); }
  float number_f32() const { return std::strtof(text.c_str(), nullptr); }

  /// The field `key` of an object, or nullptr.
  const Value *get(const std::string &key) const {
    if (type != Type::Object) return nullptr;
    auto it = fields.find(key);
    return it == fields.end() ? nullptr : &it->second;
  }
};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}

  /// Parses one JSON value spanning the whole input; throws std::runtime_error with the offset.
  Value parse() {
    Value v = value(0);
    ws();
    if (i_ != s_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const char *what) const {
    throw std::runtime_error(std::string("invalid JSON at offset ") + std::to_string(i_) + ": " +
                             what);
  }

  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n'))
      i_++;
  }

  bool eat(char c) {
    ws();
    if (i_ < s_.size() && s_[i_] == c) {
      i_++;
      return true;
    }
    return false;
  }

  void expect(char c) {
    if (!eat(c)) {
      char msg[32];
      std::snprintf(msg, sizeof msg, "expected '%c'", c);
      fail(msg);
    }
  }

  bool literal(std::string_view word) {
    if (s_.substr(i_, word.size()) == word) {
      i_ += word.size();
      return true;
    }
    return false;
  }

  Value value(int depth) {
    if (depth > 64) fail("nested too deeply");
    ws();
    if (i_ >= s_.size()) fail("unexpected end");
    Value v;
    char c = s_[i_];
    if (c == '{') {
      i_++;
      v.type = Value::Type::Object;
      if (eat('}')) return v;
      do {
        ws();
        if (i_ >= s_.size() || s_[i_] != '"') fail("expected a key");
        std::string key = string();
        expect(':');
        v.fields[key] = value(depth + 1);
      } while (eat(','));
      expect('}');
    } else if (c == '[') {
      i_++;
      v.type = Value::Type::Array;
      if (eat(']')) return v;
      do {
        v.items.push_back(value(depth + 1));
      } while (eat(','));
      expect(']');
    } else if (c == '"') {
      v.type = Value::Type::String;
      v.text = string();
    } else if (literal("true")) {
      v.type = Value::Type::Bool;
      v.boolean = true;
    } else if (literal("false")) {
      v.type = Value::Type::Bool;
    } else if (literal("null")) {
      v.type = Value::Type::Null;
    } else {
      v.type = Value::Type::Number;
      v.text = number();
    }
    return v;
  }

  std::string number() {
    std::size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') i_++;
    std::size_t digits = 0;
    auto run = [&] {
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') i_++, digits++;
    };
    run();
    if (i_ < s_.size() && s_[i_] == '.') i_++, run();
    if (digits == 0) fail("expected a value");
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      i_++;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) i_++;
      std::size_t before = digits;
      run();
      if (digits == before) fail("expected exponent digits");
    }
    return std::string(s_.substr(start, i_ - start));
  }

  static void utf8(std::string &out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  unsigned hex4() {
    if (i_ + 4 > s_.size()) fail("short \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
      char h = s_[i_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }

  std::string string() {
    i_++;  // the opening quote
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      char c = s_[i_++];
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;  // other bytes pass through; the library rejects invalid UTF-8
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated escape");
      char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(i_, 2) == "\\u") {
            i_ += 2;
            unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
    return out;
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

inline Value parse(std::string_view s) { return Parser(s).parse(); }

/// Appends `s` as a JSON string literal.
inline void write_string(std::string &out, std::string_view s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

/// Appends a double that reads back exactly (17 significant digits).
inline void write_number(std::string &out, double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  out += buf;
}

/// Appends a value as compact JSON (numbers as written).
inline void write(std::string &out, const Value &v) {
  switch (v.type) {
    case Value::Type::Null: out += "null"; break;
    case Value::Type::Bool: out += v.boolean ? "true" : "false"; break;
    case Value::Type::Number: out += v.text; break;
    case Value::Type::String: write_string(out, v.text); break;
    case Value::Type::Array:
      out += '[';
      for (std::size_t k = 0; k < v.items.size(); k++) {
        if (k) out += ',';
        write(out, v.items[k]);
      }
      out += ']';
      break;
    case Value::Type::Object: {
      out += '{';
      bool first = true;
      for (const auto &kv : v.fields) {
        if (!first) out += ',';
        first = false;
        write_string(out, kv.first);
        out += ':';
        write(out, kv.second);
      }
      out += '}';
      break;
    }
  }
}

}  // namespace json

#endif  // POINTSMAN_EXAMPLE_JSON_HPP

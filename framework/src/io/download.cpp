// Downloads with libcurl: into a temporary file beside the destination, renamed only once
// the whole file is there and its hash checks out. Nothing partial is ever left behind.
#include <curl/curl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "graft/host/download.h"
#include "graft/error.h"
#include "graft/host/sha256.h"

namespace fs = std::filesystem;

namespace graft {

namespace {

struct Progress {
  std::string name;
  bool tty = false;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last{};
  bool printed = false;
};

int on_progress(void* p, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto& pr = *static_cast<Progress*>(p);
  if (now == 0) return 0;  // nothing has arrived yet
  const auto t = std::chrono::steady_clock::now();
  if (t - pr.last < std::chrono::milliseconds(pr.tty ? 200 : 5000)) return 0;
  pr.last = t;
  const double secs = std::chrono::duration<double>(t - pr.start).count();
  const double mb = static_cast<double>(now) / 1e6;
  const double rate = secs > 0 ? mb / secs : 0;
  if (total > 0) {
    const double pct = 100.0 * static_cast<double>(now) / static_cast<double>(total);
    const int bar = static_cast<int>(pct / 4);
    std::fprintf(stderr, "%sdownloading %s [%-25s] %5.1f%% %.1f/%.1f MB %.1f MB/s%s", pr.tty ? "\r" : "",
                 pr.name.c_str(), std::string(static_cast<std::size_t>(bar), '#').c_str(), pct, mb,
                 static_cast<double>(total) / 1e6, rate, pr.tty ? "" : "\n");
  } else {
    std::fprintf(stderr, "%sdownloading %s %.1f MB %.1f MB/s%s", pr.tty ? "\r" : "", pr.name.c_str(), mb, rate,
                 pr.tty ? "" : "\n");
  }
  pr.printed = true;
  return 0;
}

std::size_t on_data(char* data, std::size_t size, std::size_t n, void* file) {
  return std::fwrite(data, size, n, static_cast<FILE*>(file)) * size;
}

}  // namespace

void download_file(const std::string& url, const std::string& dest, const std::string& hash_prefix) {
  static const bool curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
  if (!curl_ready) throw Error::runtime("cannot initialise libcurl");
  std::error_code ec;
  fs::create_directories(fs::path(dest).parent_path(), ec);
  const std::string tmp = dest + ".partial-" + std::to_string(::getpid());
  FILE* file = std::fopen(tmp.c_str(), "wb");
  if (!file) throw Error::runtime("cannot write " + tmp + " (downloading " + url + ")");

  Progress progress;
  progress.name = fs::path(dest).filename().string();
  progress.tty = ::isatty(2) != 0;
  char errbuf[CURL_ERROR_SIZE] = {0};
  CURL* curl = curl_easy_init();
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);  // abort a stalled transfer after a minute
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, file);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &progress);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "graft");
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  const bool closed = std::fclose(file) == 0;
  if (progress.printed && progress.tty) std::fprintf(stderr, "\n");
  if (rc == CURLE_OK && !progress.tty) {
    curl_off_t size = 0;
    std::FILE* f = std::fopen(tmp.c_str(), "rb");
    if (f) {
      std::fseek(f, 0, SEEK_END);
      size = std::ftell(f);
      std::fclose(f);
    }
    std::fprintf(stderr, "downloaded %s: %.1f MB in %.1f s\n", progress.name.c_str(), static_cast<double>(size) / 1e6,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - progress.start).count());
  }

  auto give_up = [&](const std::string& why) {
    fs::remove(tmp, ec);
    throw Error::runtime("cannot download " + url + ": " + why);
  };
  if (rc != CURLE_OK) give_up(errbuf[0] ? errbuf : curl_easy_strerror(rc));
  if (!closed) give_up("cannot write " + tmp);
  if (!hash_prefix.empty()) {
    const std::string digest = sha256_file(tmp);
    if (digest.compare(0, hash_prefix.size(), hash_prefix) != 0)
      give_up("hash mismatch: the file's sha256 is " + digest + ", its name promises " + hash_prefix +
              "... (corrupt download or wrong file)");
  }
  fs::rename(tmp, dest, ec);
  if (ec) give_up("cannot move it to " + dest + ": " + ec.message());
}

}  // namespace graft

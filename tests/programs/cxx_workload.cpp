// cxx_workload.cpp — a deterministic C++ workload whose output must not depend on the
// allocator (the runner compares it byte for byte with a run without arenashim).
//
//   cxx_workload [region]
//
// With "region" each unit of work runs inside an API region (when the shim is there) and
// only plain values leave it.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "arenashim.h"

namespace {

struct Shape {
    virtual ~Shape() = default;
    virtual double area() const = 0;
    virtual std::string name() const = 0;
};

struct Rect : Shape {
    double w, h;
    Rect(double w_, double h_) : w(w_), h(h_) {}
    double area() const override { return w * h; }
    std::string name() const override { return "rect"; }
};

struct Tri : Shape {
    double b, h;
    Tri(double b_, double h_) : b(b_), h(h_) {}
    double area() const override { return b * h / 2; }
    std::string name() const override { return "triangle"; }
};

uint64_t rng_state = 0x2545F4914F6CDD1Dull;
uint64_t next_random()
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

std::string word(uint64_t r)
{
    static const char *syllables[] = { "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "zu", "an" };
    std::string w;
    unsigned n = 1 + static_cast<unsigned>(r % 4);
    for (unsigned i = 0; i < n; i++) {
        w += syllables[r % 10];
        r /= 10;
    }
    return w;
}

// One unit of work; returns a line of plain text (copied out of any region by the caller).
std::string unit(int index)
{
    std::ostringstream out;
    std::unordered_map<std::string, int> counts;
    std::map<std::string, std::vector<int>> positions;
    std::vector<std::string> words;
    for (int i = 0; i < 400; i++) {
        std::string w = word(next_random());
        counts[w]++;
        positions[w].push_back(i);
        words.push_back(std::move(w));
    }
    std::vector<std::pair<int, std::string>> ranked;
    for (const auto &kv : counts)
        ranked.emplace_back(-kv.second, kv.first);
    std::sort(ranked.begin(), ranked.end());
    out << "unit " << index << ": " << counts.size() << " distinct;";
    for (size_t i = 0; i < 3 && i < ranked.size(); i++)
        out << ' ' << ranked[i].second << '=' << -ranked[i].first << '@' << positions[ranked[i].second].front();

    std::vector<std::unique_ptr<Shape>> shapes;
    for (int i = 0; i < 50; i++) {
        if (next_random() % 2)
            shapes.push_back(std::make_unique<Rect>(i % 7 + 1, i % 5 + 1));
        else
            shapes.push_back(std::make_unique<Tri>(i % 9 + 1, i % 4 + 1));
    }
    double area = 0;
    std::set<std::string> kinds;
    for (const auto &s : shapes) {
        area += s->area();
        kinds.insert(s->name());
    }
    out << "; area " << area << " kinds " << kinds.size();

    std::list<std::shared_ptr<std::string>> shared;
    for (int i = 0; i < 30; i++)
        shared.push_back(std::make_shared<std::string>(words[static_cast<size_t>(i)] + "!"));
    shared.sort([](const auto &a, const auto &b) { return *a < *b; });
    out << "; first " << *shared.front() << " last " << *shared.back();

    int caught = 0;
    for (int i = 0; i < 5; i++) {
        try {
            if (i % 2)
                throw std::runtime_error("odd " + std::to_string(i) + std::string(100, 'x'));
            (void)words.at(static_cast<size_t>(1000 + i));
        } catch (const std::out_of_range &) {
            caught += 10;
        } catch (const std::runtime_error &e) {
            caught += static_cast<int>(std::string(e.what()).size() % 7);
        }
    }
    out << "; caught " << caught;
    std::string joined;
    for (const auto &w : words)
        joined += w;
    uint64_t h = 1469598103934665603ull;
    for (char c : joined)
        h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    out << "; hash " << std::hex << h;
    return out.str();
}

} // namespace

int main(int argc, char **argv)
{
    bool regions = argc > 1 && std::string(argv[1]) == "region";
    static char line[4096];
    for (int i = 0; i < 300; i++) {
        if (regions && arenashim_region_begin)
            arenashim_region_begin();
        {
            std::string s = unit(i);
            snprintf(line, sizeof line, "%s", s.c_str());
        }
        if (regions && arenashim_region_end)
            arenashim_region_end();
        std::cout << line << '\n';
    }
    std::cout.flush();
    return 0;
}

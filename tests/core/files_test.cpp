#include "core/files.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "tests/support/test_support.h"

namespace rudder::core {
namespace {

namespace fs = std::filesystem;

void touch(const fs::path& p) { std::ofstream(p) << "x"; }

TEST(RemoveTree, RemovesEverythingBelowAndNeverFollowsLinks) {
  testing::TempDir dir;
  const fs::path root = fs::path(dir.path()) / "tree";
  const fs::path outside = fs::path(dir.path()) / "outside";
  fs::create_directories(root / "a" / "b" / "c");
  fs::create_directories(root / "empty");
  fs::create_directories(outside);
  touch(root / "top");
  touch(root / "a" / "one");
  touch(root / "a" / "b" / "c" / "deep");
  touch(outside / "kept");
  fs::create_directory_symlink(outside, root / "a" / "link_to_dir");
  fs::create_symlink(root / "missing", root / "dangling");

  // tree, a, b, c, empty, top, one, deep, link_to_dir, dangling
  EXPECT_EQ(remove_tree(root.string()), 10u);
  EXPECT_FALSE(fs::exists(fs::symlink_status(root)));
  EXPECT_TRUE(fs::exists(outside / "kept"));

  // A link given as the path itself goes, its target stays.
  fs::create_directory_symlink(outside, root);
  EXPECT_EQ(remove_tree(root.string()), 1u);
  EXPECT_FALSE(fs::exists(fs::symlink_status(root)));
  EXPECT_TRUE(fs::exists(outside / "kept"));

  // A plain file is removed like rm -rf would.
  EXPECT_EQ(remove_tree((outside / "kept").string()), 1u);
  EXPECT_FALSE(fs::exists(outside / "kept"));
}

TEST(RemoveTree, AMissingPathIsNoErrorAndABadOneIsNamed) {
  testing::TempDir dir;
  std::error_code ec = std::make_error_code(std::errc::io_error);
  EXPECT_EQ(remove_tree(dir.path() + "/not-there", ec), 0u);
  EXPECT_FALSE(ec);
  EXPECT_EQ(remove_tree(dir.path() + "/not-there"), 0u);

  // A path through a regular file is an error (ENOTDIR), and the file is left alone.
  const std::string file = dir.write("file", "content");
  const std::string bad = file + "/sub";
  EXPECT_EQ(remove_tree(bad, ec), 0u);
  EXPECT_EQ(ec, std::errc::not_a_directory);
  try {
    remove_tree(bad);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot remove " + bad), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_regular_file(file));
  EXPECT_THROW(remove_tree(""), InvalidArgument);
  for (const std::string path : {"/", ".", "..", "./", "a/..", "//"}) {
    EXPECT_THROW(remove_tree(path), InvalidArgument) << path;
    EXPECT_EQ(remove_tree(path, ec), 0u);
    EXPECT_EQ(ec, std::errc::invalid_argument) << path;
  }
}

}  // namespace
}  // namespace rudder::core

"""Takes docs/review_page.png: a review page (runners/review.py) in headless chromium, three items labelled.

    python docs/review_page.py --review runs/review [--output docs/review_page.png]

The picture in the README was taken of a review of the real forest recordings' counting run.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.test_review_page import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the browser test's settings)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--review", required=True, help="a folder written by runners/review.py")
    parser.add_argument("--output", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "review_page.png"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 900, "height": 1150})
        page.goto("file://" + os.path.abspath(os.path.join(args.review, "index.html")))
        page.wait_for_function("Array.from(document.images).every(image => image.complete)")
        for key in "cn":  # the first two labelled, the third one current
            page.keyboard.press(key)
        page.evaluate("window.scrollTo(0, 0)")
        page.wait_for_timeout(500)
        page.screenshot(path=args.output)
        browser.close()
    from PIL import Image

    # 256 colours: a quarter of the bytes, no visible loss on spectrograms.
    Image.open(args.output).convert("RGB").quantize(256).save(args.output, optimize=True)
    print(f"→ {args.output}")


if __name__ == "__main__":
    main()

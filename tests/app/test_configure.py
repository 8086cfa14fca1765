"""The Configure page: the image size trade-off (the chosen size is always a row, and the one ticked), a
sentence about the size that is true for the preset shown, and "Settings chosen" only when the user chose."""

from __future__ import annotations

import io
import zipfile

import numpy as np
from tests.app.support import new_app, shown_text, weights_choice
from PIL import Image

from quasar_core.presets import PRESETS
from quasar_core.wording import join_words
from ui import nav, settings_form, state


def test_the_chosen_image_size_is_always_a_ticked_row():
    at = new_app().run()
    at.switch_page(nav.UPLOAD.path).run()
    at.button(key="load_sample").click().run()
    at.switch_page(nav.CONFIGURE.path).run()
    at.radio(key="setting.weights").set_value(weights_choice()).run()
    for chosen, expected in ((96, ["64", "96", "128", "160", "224"]),  # one of the sizes compared
                             (48, ["48", "64", "96", "128", "160", "224"]),  # between none of them
                             (512, ["64", "96", "128", "160", "224", "512"])):  # past them all
        at.select_slider(key="setting.image_size").set_value(chosen).run()
        assert not at.exception and not at.error
        assert at.session_state[state.CONFIG_KEY].image_size == chosen
        [table] = [frame.value for frame in at.dataframe]  # the trade-off is the page's one table
        assert list(table["Image size"]) == [f"{size} px" for size in expected]
        assert [size for size, tick in zip(table["Image size"], table["Chosen"]) if tick == "✓"] == [f"{chosen} px"]
        assert set(table["Chosen"]) == {"✓", ""}


def size_sentence(at) -> str:
    [sentence] = [m.value.replace("**", "") for m in at.markdown if "the suggested image size is" in m.value]
    return sentence


def check_presets(at, suggested: int, quick: int, best_sizes: list[int]):
    """For each preset: the sentence names the size that preset really uses, and the settings hold it."""
    dataset = at.session_state[state.DATASET_KEY]
    for name, claim in (("Quick look", f"Quick look uses {quick} px"),
                        ("Balanced", f"Balanced uses {suggested} px"),
                        ("Best accuracy", "Best accuracy tries its settings at "
                                          + join_words([f"{s} px" for s in best_sizes]))):
        at.radio(key=settings_form.PRESET_KEY).set_value(name).run()
        assert not at.exception and not at.error
        sentence = size_sentence(at)
        assert f"the suggested image size is {suggested} px" in sentence
        assert claim in sentence, (name, sentence)
        config = at.session_state[state.CONFIG_KEY]
        preset = next(p for p in PRESETS.values() if p.name == name)
        assert config == preset.config(dataset)
        assert "Your settings use" not in sentence  # the preset's own size
        assert "with your changes" not in shown_text(at)
        if name == "Best accuracy":
            assert sorted({c.image_size for c in preset.candidates(dataset)}) == best_sizes
        else:
            assert f"uses {config.image_size} px" in sentence
    return sentence


def test_the_size_sentence_is_true_for_the_preset_shown():
    at = new_app().run()
    at.switch_page(nav.UPLOAD.path).run()
    at.button(key="load_sample").click().run()
    at.switch_page(nav.CONFIGURE.path).run()
    # 28 px photos: 96 px is enough for every preset, and Best has no larger size to try.
    sentence = check_presets(at, suggested=96, quick=96, best_sizes=[96])
    assert "larger" not in sentence and "the detail for it" not in sentence

    # A size of the user's own: the sentence and the caption both say so.
    at.radio(key=settings_form.PRESET_KEY).set_value("Quick look").run()
    at.select_slider(key="setting.image_size").set_value(32).run()
    assert "Your settings use 32 px." in size_sentence(at)
    assert "Started from the Quick look preset, with your changes." in shown_text(at)


def large_photos_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n, label in enumerate(("lakes", "forests")):
            for i in range(5):
                pixels = np.random.default_rng(100 * n + i).integers(0, 256, (300, 320, 3), dtype=np.uint8)
                photo = io.BytesIO()
                Image.fromarray(pixels).save(photo, "PNG")
                archive.writestr(f"{label}/{i}.png", photo.getvalue())
    return buffer.getvalue()


def test_the_size_sentence_for_large_photos():
    at = new_app().run()
    at.switch_page(nav.UPLOAD.path).run()
    at.file_uploader(key="upload_zip").set_value(("big.zip", large_photos_zip(), "application/zip")).run()
    at.button(key="load_zip").click().run()
    assert at.session_state[state.DATASET_KEY].median_source_side() == 300
    at.switch_page(nav.CONFIGURE.path).run()
    sentence = check_presets(at, suggested=224, quick=128, best_sizes=[224, 352])
    assert "352 px because your photos have the detail for it" in sentence
    at.radio(key=settings_form.PRESET_KEY).set_value("Quick look").run()
    assert "Quick look uses 128 px, its limit, to stay quick." in size_sentence(at)


def ticked(at, label: str) -> bool:
    """Whether Home's progress step `label` has its tick."""
    [line] = [m.value for m in at.markdown if m.value.endswith(f"**{label}**")]
    return line.startswith(":material/check_circle:")


def test_settings_chosen_is_ticked_only_when_the_user_chose():
    at = new_app().run()
    workspace_id = at.query_params["workspace"]
    assert not ticked(at, "Settings chosen")
    at.switch_page(nav.CONFIGURE.path).run()  # looking at the defaults is not choosing them
    at.switch_page(nav.HOME.path).run()
    assert not ticked(at, "Settings chosen")

    at.switch_page(nav.UPLOAD.path).run()
    at.button(key="load_sample").click().run()
    at.switch_page(nav.CONFIGURE.path).run()
    at.switch_page(nav.HOME.path).run()
    assert ticked(at, "Photos loaded") and not ticked(at, "Settings chosen")

    reloaded = new_app({"workspace": workspace_id}).run()  # the app sized the settings, the user did not choose
    assert ticked(reloaded, "Photos loaded") and not ticked(reloaded, "Settings chosen")

    reloaded.switch_page(nav.CONFIGURE.path).run()
    reloaded.radio(key=settings_form.PRESET_KEY).set_value("Quick look").run()  # Balanced is the default
    reloaded.switch_page(nav.HOME.path).run()
    assert ticked(reloaded, "Settings chosen")
    again = new_app({"workspace": workspace_id}).run()
    assert ticked(again, "Settings chosen")
    assert again.session_state[state.PRESET_KEY] == "Quick look"
    assert again.session_state[state.CONFIG_KEY] == PRESETS["quick"].config(again.session_state[state.DATASET_KEY])


def test_the_estimate_is_one_number_in_the_sentence_and_the_chosen_row():
    """Configure's sentence and its table's ticked row say the same time, features cached or not, for every preset;
    VGG16's speed is measured once on this computer and read back afterwards (no spinner on the next visit)."""
    import re

    from quasar_core import speed
    from quasar_core.runs.folder import default_runs_root

    at = new_app().run()
    at.switch_page(nav.UPLOAD.path).run()
    at.button(key="load_sample").click().run()
    at.switch_page(nav.CONFIGURE.path).run()
    at.radio(key="setting.weights").set_value(weights_choice()).run()
    assert speed.remembered(default_runs_root()) is not None  # kept beside the runs for the next visit
    for name in ("Quick look", "Balanced", "Best accuracy"):
        at.radio(key=settings_form.PRESET_KEY).set_value(name).run()
        if name != "Quick look":
            at.radio(key="setting.weights").set_value(weights_choice()).run()
        assert not at.exception and not at.error
        [said] = [m.value for m in at.markdown if m.value.startswith("Estimated training time on this computer")]
        shown = re.search(r"\*\*(.+?)\*\*", said).group(1)
        [table] = [frame.value for frame in at.dataframe]
        [chosen] = [time for time, tick in zip(table["Estimated time"], table["Chosen"]) if tick == "✓"]
        assert chosen == shown, (name, said, list(table["Estimated time"]))

"""The Configure page's image size trade-off: the chosen size is always a row, and the one ticked."""

from __future__ import annotations

from conftest import new_app, weights_choice

from ui import nav, state


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

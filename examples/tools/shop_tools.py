"""Tools of a small shop's support bot, for `llmos teach-tools --tools examples/tools/shop_tools.py`.

Each public function is a tool: its name, its docstring's first line (the description) and its
typed arguments (described in the docstring's Args) are what the model is shown.
"""


def track_parcel(tracking_number: str) -> str:
    """Where a parcel is and when it arrives.

    Args:
        tracking_number: the parcel's tracking number, e.g. NW48213377
    """
    return f"{tracking_number}: out for delivery, arrives today before 18:00"


def store_opening_hours(store: str, day: str) -> str:
    """The opening hours of one of our stores on a day of the week.

    Args:
        store: the store's town, e.g. Leeds
        day: the day of the week, e.g. Saturday
    """
    return f"{store}, {day}: 9:00-17:30"


def reserve_bike(model: str, store: str, days: int) -> str:
    """Reserve a rental bike in a store for a number of days.

    Args:
        model: the bike model, e.g. city cruiser
        store: the store's town
        days: how many days, 1 to 14
    """
    return f"reserved: {model} in {store} for {days} days, booking RB-2291"

"""common.prepare on hand-made samples of each official annotation format (a few fake entries per class, empty
files as videos, the quirks of the real files), the dataset.json it writes, and the raw-download hint."""
import json
import os
import random

import pytest
import torch

from common.data import AnnotationError, read_list
from common.prepare import flip_map, flip_pairs, main, raw_dataset_hint, read_dataset_info
from common.video import read_frame_folder
from test_common import write_jpeg

# The 174 Something-Something class names (gluon-cv's SomethingSomethingV2Attr.classes, the SSv2 labels sorted).
# Sorted, the direction classes sit at 86/87, 93/94 and 166/167: the index map TDN and EAN hard-code.
SS_CLASSES = [
    'Approaching something with your camera', 'Attaching something to something',
    'Bending something so that it deforms', 'Bending something until it breaks', 'Burying something in something',
    'Closing something', 'Covering something with something', 'Digging something out of something',
    'Dropping something behind something', 'Dropping something in front of something',
    'Dropping something into something', 'Dropping something next to something', 'Dropping something onto something',
    'Failing to put something into something because something does not fit', 'Folding something',
    'Hitting something with something', 'Holding something', 'Holding something behind something',
    'Holding something in front of something', 'Holding something next to something',
    'Holding something over something', 'Laying something on the table on its side, not upright',
    'Letting something roll along a flat surface', 'Letting something roll down a slanted surface',
    'Letting something roll up a slanted surface, so it rolls back down',
    'Lifting a surface with something on it but not enough for it to slide down',
    'Lifting a surface with something on it until it starts sliding down',
    'Lifting something up completely without letting it drop down',
    'Lifting something up completely, then letting it drop down', 'Lifting something with something on it',
    'Lifting up one end of something without letting it drop down',
    'Lifting up one end of something, then letting it drop down', 'Moving away from something with your camera',
    'Moving part of something', 'Moving something across a surface until it falls down',
    'Moving something across a surface without it falling down', 'Moving something and something away from each other',
    'Moving something and something closer to each other',
    'Moving something and something so they collide with each other',
    'Moving something and something so they pass each other', 'Moving something away from something',
    'Moving something away from the camera', 'Moving something closer to something', 'Moving something down',
    'Moving something towards the camera', 'Moving something up', 'Opening something', 'Picking something up',
    'Piling something up', 'Plugging something into something',
    'Plugging something into something but pulling it right out as you remove your hand',
    'Poking a hole into some substance', 'Poking a hole into something soft',
    'Poking a stack of something so the stack collapses', 'Poking a stack of something without the stack collapsing',
    'Poking something so it slightly moves', "Poking something so lightly that it doesn't or almost doesn't move",
    'Poking something so that it falls over', 'Poking something so that it spins around',
    'Pouring something into something', 'Pouring something into something until it overflows',
    'Pouring something onto something', 'Pouring something out of something',
    'Pretending or failing to wipe something off of something', 'Pretending or trying and failing to twist something',
    'Pretending to be tearing something that is not tearable',
    'Pretending to close something without actually closing it',
    'Pretending to open something without actually opening it', 'Pretending to pick something up',
    'Pretending to poke something', 'Pretending to pour something out of something, but something is empty',
    'Pretending to put something behind something', 'Pretending to put something into something',
    'Pretending to put something next to something', 'Pretending to put something on a surface',
    'Pretending to put something onto something', 'Pretending to put something underneath something',
    'Pretending to scoop something up with something', 'Pretending to spread air onto something',
    'Pretending to sprinkle air onto something', 'Pretending to squeeze something',
    'Pretending to take something from somewhere', 'Pretending to take something out of something',
    'Pretending to throw something', 'Pretending to turn something upside down',
    'Pulling something from behind of something', 'Pulling something from left to right',
    'Pulling something from right to left', 'Pulling something onto something', 'Pulling something out of something',
    'Pulling two ends of something but nothing happens', 'Pulling two ends of something so that it gets stretched',
    'Pulling two ends of something so that it separates into two pieces', 'Pushing something from left to right',
    'Pushing something from right to left', 'Pushing something off of something', 'Pushing something onto something',
    'Pushing something so it spins', "Pushing something so that it almost falls off but doesn't",
    'Pushing something so that it falls off the table', 'Pushing something so that it slightly moves',
    'Pushing something with something', 'Putting number of something onto something',
    'Putting something and something on the table', 'Putting something behind something',
    'Putting something in front of something', 'Putting something into something',
    'Putting something next to something', 'Putting something on a flat surface without letting it roll',
    'Putting something on a surface',
    'Putting something on the edge of something so it is not supported and falls down',
    "Putting something onto a slanted surface but it doesn't glide down", 'Putting something onto something',
    'Putting something onto something else that cannot support it so it falls down',
    'Putting something similar to other things that are already on the table',
    "Putting something that can't roll onto a slanted surface, so it slides down",
    "Putting something that can't roll onto a slanted surface, so it stays where it is",
    'Putting something that cannot actually stand upright upright on the table, so it falls on its side',
    'Putting something underneath something', 'Putting something upright on the table',
    'Putting something, something and something on the table', 'Removing something, revealing something behind',
    'Rolling something on a flat surface', 'Scooping something up with something',
    'Showing a photo of something to the camera', 'Showing something behind something',
    'Showing something next to something', 'Showing something on top of something', 'Showing something to the camera',
    'Showing that something is empty', 'Showing that something is inside something',
    'Something being deflected from something', 'Something colliding with something and both are being deflected',
    'Something colliding with something and both come to a halt', 'Something falling like a feather or paper',
    'Something falling like a rock', 'Spilling something behind something', 'Spilling something next to something',
    'Spilling something onto something', 'Spinning something so it continues spinning',
    'Spinning something that quickly stops spinning', 'Spreading something onto something',
    'Sprinkling something onto something', 'Squeezing something', 'Stacking number of something',
    'Stuffing something into something', 'Taking one of many similar things on the table',
    'Taking something from somewhere', 'Taking something out of something', 'Tearing something into two pieces',
    'Tearing something just a little bit', 'Throwing something', 'Throwing something against something',
    'Throwing something in the air and catching it', 'Throwing something in the air and letting it fall',
    'Throwing something onto a surface', "Tilting something with something on it slightly so it doesn't fall down",
    'Tilting something with something on it until it falls off', 'Tipping something over',
    'Tipping something with something in it over, so something in it falls out',
    'Touching (without moving) part of something',
    "Trying but failing to attach something to something because it doesn't stick",
    'Trying to bend something unbendable so nothing happens',
    'Trying to pour something into something, but missing so it spills next to it', 'Turning something upside down',
    'Turning the camera downwards while filming something', 'Turning the camera left while filming something',
    'Turning the camera right while filming something', 'Turning the camera upwards while filming something',
    'Twisting (wringing) something wet until water comes out', 'Twisting something', 'Uncovering something',
    'Unfolding something', 'Wiping something off of something',
]

SS_DIRECTION_PAIRS = {frozenset(p) for p in (
    ("Pulling something from left to right", "Pulling something from right to left"),
    ("Pushing something from left to right", "Pushing something from right to left"),
    ("Turning the camera left while filming something", "Turning the camera right while filming something"))}


def touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()


def write(path, text, crlf=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="\r\n" if crlf else "\n") as f:
        f.write(text)


def lines(dest, split):
    with open(os.path.join(dest, f"{split}.txt")) as f:
        return f.read().splitlines()


def classes(dest):
    with open(os.path.join(dest, "classes.txt")) as f:
        return f.read().splitlines()


def named_pairs(info, names):
    return {frozenset((names[a], names[b])) for a, b in info["flip_pairs"]}


def assert_no_swap(dest, name):
    """A dataset without direction classes: dataset.json says so, and a flipped clip keeps its label."""
    info = read_dataset_info(dest)
    assert info["name"] == name and info["flip_pairs"] == [] and flip_map(info) == {}
    return info


# ---------------------------------------------------------------------------------------------- flip pairs
def test_flip_pairs_are_found_by_class_name():
    assert flip_pairs(SS_CLASSES) == [[86, 87], [93, 94], [166, 167]]
    shuffled = random.Random(0).sample(SS_CLASSES, len(SS_CLASSES))
    assert named_pairs({"flip_pairs": flip_pairs(shuffled)}, shuffled) == SS_DIRECTION_PAIRS
    # "pulling it right out" and "upright" are not directions; case, underscores and rotation sense are handled
    assert flip_pairs(["Plugging something into something but pulling it right out as you remove your hand",
                       "Putting something upright on the table", "swiping_Left", "Swiping right",
                       "Turning Hand Clockwise", "Turning Hand Counterclockwise"]) == [[2, 3], [4, 5]]
    assert flip_pairs(["ApplyEyeMakeup", "HandstandPushups", "brush_hair", "passing American football (in game)",
                       "Back 15som 05Twis FREE", "Holding some clothes"]) == []
    with pytest.raises(AnnotationError, match="names one class twice"):
        flip_pairs(["Holding something", "holding  something"])


# ---------------------------------------------------------------------------------------------- Something-Something
def jpeg(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_jpeg(torch.full((3, 8, 8), 128, dtype=torch.uint8), path)


def test_ssv1_sorted_classes_frame_template_and_flip_pairs(tmp_path, capsys):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    shuffled = random.Random(1).sample(SS_CLASSES, len(SS_CLASSES))     # the official labels csv is not sorted
    write(src / "something-something-v1-labels.csv", "".join(c + "\n" for c in shuffled), crlf=True)
    write(src / "something-something-v1-train.csv", "100;Pulling something from left to right\n"
          "101;Turning the camera right while filming something\n"
          "102;pushing something  from right to left\n"                     # other case and spaces
          "104;Holding something\n", crlf=True)
    write(src / "something-something-v1-validation.csv", "103;Holding something\n")
    frames = src / "20bn-something-something-v1"
    for vid, n in (("100", 3), ("101", 2), ("102", 2), ("103", 2)):
        for i in range(1, n + 1):
            jpeg(frames / vid / f"{i:05d}.jpg")
    touch(frames / "104" / "img_00001.jpg")                                  # not the SSv1 naming: left out
    report = main(["ssv1", str(src), dest])
    names = classes(dest)
    assert names == sorted(SS_CLASSES)                                       # TSM's order
    assert lines(dest, "train") == ["../src/20bn-something-something-v1/100 3 86",   # RELPATH NUM_FRAMES LABEL
                                    "../src/20bn-something-something-v1/101 2 167",
                                    "../src/20bn-something-something-v1/102 2 94"]
    assert report["train"][1] == [f"{frames / '104'} (frames not named 00001.jpg, 00002.jpg, ...)"]
    assert "1 annotations name their class with other case" in capsys.readouterr().out
    info = read_dataset_info(dest)
    assert (info["name"], info["num_classes"], info["frame_template"], info["start_index"]) == \
        ("ssv1", 174, "{:05d}.jpg", 1)
    assert info["flip_pairs"] == [[86, 87], [93, 94], [166, 167]] and named_pairs(info, names) == SS_DIRECTION_PAIRS
    assert "left to right" in names[86] and names[87] == names[86].replace("left to right", "right to left")
    # the lists and dataset.json's template read the frames without any --frame-template
    record = read_list(os.path.join(dest, "val.txt"), dest, 174)[0]
    clip = read_frame_folder(record.path, [0, record.num_frames - 1], info["frame_template"], info["start_index"])
    assert clip.shape == (2, 3, 8, 8)


def ssv2_raw(src, index, train, val):
    write(src / "labels/something-something-v2-labels.json", json.dumps(index))
    for name, templates in (("train", train), ("validation", val)):
        entries = [{"id": str(vid), "label": "x", "template": t, "placeholders": []} for vid, t in templates]
        write(src / f"labels/something-something-v2-{name}.json", json.dumps(entries))
        for vid, _ in templates:
            touch(src / "20bn-something-something-v2" / f"{vid}.webm")


def test_ssv2_shuffled_label_file(tmp_path):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    order = random.Random(2).sample(SS_CLASSES, len(SS_CLASSES))            # the labels json's indices
    keys = random.Random(3).sample(order, len(order))                        # and another order of its keys
    ssv2_raw(src, {name: str(order.index(name)) for name in keys},
             [(11, "Pulling [something] from left to right"), (12, "Turning the camera left while filming [something]"),
              (13, "Pushing [something] with [something]")], [(14, "Pushing [something] from right to left")])
    main(["ssv2", str(src), dest])
    assert classes(dest) == order                                            # the json's indices, not sorted
    assert [int(line.split()[-1]) for line in lines(dest, "train")] == [
        order.index("Pulling something from left to right"),               # template brackets removed
        order.index("Turning the camera left while filming something"), order.index("Pushing something with something")]
    assert lines(dest, "val")[0].endswith(f"14.webm {order.index('Pushing something from right to left')}")
    info = read_dataset_info(dest)
    assert info["frame_template"] is None and named_pairs(info, order) == SS_DIRECTION_PAIRS
    swap = flip_map(info)
    assert order[swap[order.index("Pulling something from left to right")]] == "Pulling something from right to left"
    assert order[swap[order.index("Turning the camera right while filming something")]] == \
        "Turning the camera left while filming something"


def test_ssv2_label_file_indices_are_checked(tmp_path):
    src = tmp_path / "src"
    ssv2_raw(src, {"Holding something": "0", "Moving something up": "2"}, [(1, "Holding [something]")], [])
    with pytest.raises(SystemExit, match=r"indices 0\.\.1 once each"):
        main(["ssv2", str(src), str(tmp_path / "out")])


def test_ssv2_unknown_template_stops(tmp_path):
    src = tmp_path / "src"
    ssv2_raw(src, {"Holding something": "0", "Moving something up": "1"}, [(1, "Holding [something]")],
             [(2, "Moving [something] sideways")])
    with pytest.raises(SystemExit, match="1 annotations name a class that is not in .*'Moving something sideways'"):
        main(["ssv2", str(src), str(tmp_path / "out")])


# ---------------------------------------------------------------------------------------------- UCF101
UCF_CLASSES = "1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n"   # classInd.txt: 1-based, CRLF line endings


def ucf_raw(src, train, test, videos, class_ind=UCF_CLASSES):
    write(src / "ucfTrainTestlist/classInd.txt", class_ind, crlf=True)
    write(src / "ucfTrainTestlist/trainlist01.txt", train, crlf=True)
    write(src / "ucfTrainTestlist/testlist01.txt", test, crlf=True)
    for rel in videos:
        touch(src / "UCF-101" / rel)


def test_ucf101(tmp_path, capsys):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    # as in the real lists: the class folder is HandstandPushups, its files v_HandStandPushups_*; test lists have
    # no label. Copies edited by others: one file on disk renamed to other case, one entry's folder in the files'
    # case (HandStandPushups, as some copies of classInd.txt have it): found, matched, counted in warnings
    ucf_raw(src, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nHandstandPushups/v_HandStandPushups_g08_c01.avi 2\n"
            "YoYo/v_YoYo_g08_c01.avi 3\nYoYo/v_gone.avi 3\n",
            "HandstandPushups/v_HandStandPushups_g01_c01.avi\nHandStandPushups/v_HandStandPushups_g02_c01.avi\n"
            "YoYo/v_YoYo_g01_c01.avi\n",
            ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "HandstandPushups/v_HandStandPushups_g08_c01.avi",
             "YoYo/v_YoYo_g08_c01.avi", "HandstandPushups/v_HandstandPushups_g01_c01.avi",
             "HandstandPushups/v_HandStandPushups_g02_c01.avi", "YoYo/v_YoYo_g01_c01.avi"])
    report = main(["ucf101", str(src), dest])
    assert classes(dest) == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]    # 1-based classInd -> 0-based
    assert report["train"] == (3, [str(src / "UCF-101/YoYo/v_gone.avi")])
    assert lines(dest, "val") == ["../src/UCF-101/HandstandPushups/v_HandstandPushups_g01_c01.avi 1",
                                  "../src/UCF-101/HandstandPushups/v_HandStandPushups_g02_c01.avi 1",
                                  "../src/UCF-101/YoYo/v_YoYo_g01_c01.avi 2"]
    assert [r.label for r in read_list(os.path.join(dest, "train.txt"), dest, 3)] == [0, 1, 2]
    out = capsys.readouterr().out
    assert "1 listed videos were found only by a case-insensitive name match" in out
    assert "1 annotations name their class with other case" in out
    info = assert_no_swap(dest, "ucf101")
    assert (info["frame_template"], info["start_index"], info["split"]) == (None, None, 1)


def test_ucf101_label_that_contradicts_class_ind_stops(tmp_path):
    src = tmp_path / "src"
    ucf_raw(src, "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 3\n", "YoYo/v_YoYo_g01_c01.avi\n",
            ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", "YoYo/v_YoYo_g01_c01.avi"])
    with pytest.raises(SystemExit, match="has the label 3, but classInd.txt numbers ApplyEyeMakeup 1"):
        main(["ucf101", str(src), str(tmp_path / "out")])


def test_train_val_overlap_stops(tmp_path):
    src = tmp_path / "src"
    ucf_raw(src, "YoYo/v_YoYo_g01_c01.avi 3\nYoYo/v_YoYo_g02_c01.avi 3\n", "YoYo/v_YoYo_g01_c01.avi\n",
            ["YoYo/v_YoYo_g01_c01.avi", "YoYo/v_YoYo_g02_c01.avi"])
    with pytest.raises(SystemExit, match=r"1 videos are in both train and val \(e.g. .*v_YoYo_g01_c01.avi\)"):
        main(["ucf101", str(src), str(tmp_path / "out")])
    assert not os.path.exists(tmp_path / "out")                              # nothing written


def test_missing_split_or_annotation_file_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="classInd.txt not found under"):
        main(["ucf101", str(tmp_path), str(tmp_path / "out")])
    ucf_raw(tmp_path / "src", "YoYo/v_YoYo_g01_c01.avi 3\n", "YoYo/v_YoYo_g02_c01.avi\n", [])
    with pytest.raises(SystemExit, match="trainlist02.txt not found under"):
        main(["ucf101", str(tmp_path / "src"), str(tmp_path / "out"), "--split", "2"])
    with pytest.raises(SystemExit, match="none of the 1 train videos was found"):
        main(["ucf101", str(tmp_path / "src"), str(tmp_path / "out")])
    write(tmp_path / "ss/something-something-v2-labels.json", '{"Holding something": "0"}')
    write(tmp_path / "ss/something-something-v2-train.json", "[]")
    with pytest.raises(SystemExit, match="something-something-v2-validation.json not found under"):
        main(["ssv2", str(tmp_path / "ss"), str(tmp_path / "out")])


# ---------------------------------------------------------------------------------------------- other formats
def test_hmdb51(tmp_path):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    # testTrainMulti_7030_splits: "VIDEO.avi CODE " with a trailing space; 1 train, 2 test, 0 unused
    write(src / "testTrainMulti_7030_splits/cartwheel_test_split1.txt", "d.avi 2 \n", crlf=True)
    write(src / "testTrainMulti_7030_splits/brush_hair_test_split1.txt", "a.avi 1 \nb.avi 2 \nc.avi 0 \n", crlf=True)
    for rel in ("brush_hair/a.avi", "brush_hair/b.avi", "brush_hair/c.avi", "cartwheel/d.avi"):
        touch(src / "videos" / rel)
    main(["hmdb51", str(src), dest])
    assert classes(dest) == ["brush_hair", "cartwheel"]
    assert lines(dest, "train") == ["../src/videos/brush_hair/a.avi 0"]
    assert lines(dest, "val") == ["../src/videos/brush_hair/b.avi 0", "../src/videos/cartwheel/d.avi 1"]
    assert_no_swap(dest, "hmdb51")
    write(src / "testTrainMulti_7030_splits/cartwheel_test_split1.txt", "d.avi 3\n")
    with pytest.raises(SystemExit, match=r"expected 'VIDEO.avi 0\|1\|2', got 'd.avi 3'"):
        main(["hmdb51", str(src), dest])


def test_kinetics400(tmp_path):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    header = "label,youtube_id,time_start,time_end,split,is_cc\n"
    # quoted labels (with parentheses; a comma as well, which the csv reader must keep), times as int or float
    write(src / "kinetics400/train.csv", header + 'abseiling,abc,10,20,train,0\n'
          '"playing guitar",-def_x,0.0,10.0,train,0\n"passing American football (in game)",ghi,5,15,train,0\n'
          '"tying knot, fast",jkl,1,11,train,0\n')
    write(src / "kinetics400/validate.csv", header + '"passing American football (in game)",mno,5,15,val,0\n')
    touch(src / "train/abseiling/abc_000010_000020.mp4")
    touch(src / "train/playing guitar/-def_x_000000_000010.mp4")
    touch(src / "train/passing_American_football_in_game/ghi_000005_000015.mp4")
    touch(src / "train/tying_knot/jkl_000001_000011.mp4")
    touch(src / "val/mno_000005_000015.mp4")
    main(["kinetics400", str(src), dest])
    assert classes(dest) == ["abseiling", "passing American football (in game)", "playing guitar", "tying knot, fast"]
    recs = read_list(os.path.join(dest, "train.txt"), dest, 4)
    assert [r.label for r in recs] == [0, 2, 1, 3]
    assert recs[1].path.endswith("playing guitar/-def_x_000000_000010.mp4")  # spaces in paths
    assert lines(dest, "val") == ["../src/val/mno_000005_000015.mp4 1"]
    assert_no_swap(dest, "kinetics400")
    write(src / "kinetics400/validate.csv", header + "bungee jumping,pqr,0,10,val,0\n")
    with pytest.raises(SystemExit, match="not in the labels of train.csv.*'bungee jumping'"):
        main(["kinetics400", str(src), dest])


def test_diving48_prefers_v2_annotations(tmp_path):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    write(src / "Diving48_vocab.json", json.dumps([["Back", "15som", "05Twis", "FREE"],
                                                   ["Forward", "25som", "NoTwis", "PIKE"]]))
    for name, vid, label in (("V2_train", "v1", 1), ("V2_test", "v2", 0), ("train", "v1", 0)):  # V1: other label
        write(src / f"Diving48_{name}.json",
              json.dumps([{"vid_name": vid, "label": label, "start_frame": 0, "end_frame": 80}]))
    touch(src / "rgb/v1.mp4")
    touch(src / "rgb/v2.mp4")
    main(["diving48", str(src), dest])
    assert classes(dest) == ["Back 15som 05Twis FREE", "Forward 25som NoTwis PIKE"]
    assert lines(dest, "train") == ["../src/rgb/v1.mp4 1"] and lines(dest, "val") == ["../src/rgb/v2.mp4 0"]
    assert_no_swap(dest, "diving48")


def test_charades_multi_label(tmp_path, capsys):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    write(src / "Charades/Charades_v1_classes.txt", "c000 Holding some clothes\nc001 Putting clothes somewhere\n"
          "c002 Taking some clothes from somewhere\n")
    header = "id,subject,scene,quality,relevance,verified,script,objects,descriptions,actions,length\n"
    write(src / "Charades/Charades_v1_train.csv", header
          + 'AAA,s,Kitchen,6,7,Yes,x,y,z,"c002 1.0 5.0;c000 2.0 3.0",30\n'
          "BBB,s,Kitchen,6,7,Yes,x,y,z,,30\n")                               # no actions: left out, said so
    write(src / "Charades/Charades_v1_test.csv", header + 'CCC,s,Kitchen,6,7,Yes,x,y,z,"c001 0.0 4.0",30\n')
    for vid in ("AAA", "BBB", "CCC"):
        touch(src / "Charades_v1_480" / f"{vid}.mp4")
    main(["charades", str(src), dest])
    assert lines(dest, "train") == ["../src/Charades_v1_480/AAA.mp4 0,2"]
    assert read_list(os.path.join(dest, "train.txt"), dest, 3, multi_label=True)[0].label == (0, 2)
    assert lines(dest, "val") == ["../src/Charades_v1_480/CCC.mp4 1"]
    assert "1 videos of Charades_v1_train.csv have no actions" in capsys.readouterr().out
    assert assert_no_swap(dest, "charades")["multi_label"] is True


# ---------------------------------------------------------------------------------------------- dataset.json
def test_read_dataset_info_refuses_a_stale_or_malformed_file(tmp_path):
    src, dest = tmp_path / "src", str(tmp_path / "out")
    assert read_dataset_info(dest) is None and flip_map(None) == {}         # hand-made lists: nothing swapped
    ucf_raw(src, "YoYo/v_YoYo_g01_c01.avi 3\n", "YoYo/v_YoYo_g02_c01.avi\n", ["YoYo/v_YoYo_g01_c01.avi",
            "YoYo/v_YoYo_g02_c01.avi"], class_ind="1 Swiping_Left\n2 Swiping_Right\n3 YoYo\n")
    main(["ucf101", str(src), dest])
    info = read_dataset_info(dest)
    assert info["flip_pairs"] == [[0, 1]] and flip_map(info) == {0: 1, 1: 0}
    assert info["source"] == os.path.abspath(src) and info["created"]
    path = os.path.join(dest, "dataset.json")
    text = open(path).read()
    with open(os.path.join(dest, "classes.txt"), "a") as f:
        f.write("Swiping_Up\n")
    with pytest.raises(AnnotationError, match="no longer describes .*classes.txt"):
        read_dataset_info(dest)
    with open(os.path.join(dest, "classes.txt"), "w") as f:
        f.write("Swiping_Right\nSwiping_Left\nYoYo\n")                       # same count, other order
    with pytest.raises(AnnotationError, match="no longer describes"):
        read_dataset_info(dest)
    main(["ucf101", str(src), dest])
    for old, new, match in (('"flip_pairs": [[0, 1]]', '"flip_pairs": [[0, 3]]', "must be pairs of distinct labels"),
                            ('"frame_template": null', '"frame_template": "00001.jpg"', "frame number field"),
                            ('"flip_pairs"', '"flips"', "no flip_pairs"), ("{", "", "not valid JSON")):
        assert old in text
        with open(path, "w") as f:
            f.write(text.replace(old, new, 1))
        with pytest.raises(AnnotationError, match=match):
            read_dataset_info(dest)


def test_demo_class_names_give_its_flip_pairs_and_an_old_cache_gets_dataset_json(tmp_path):
    from common.demo import CLASSES, demo_dataset
    assert flip_pairs(CLASSES) == [[0, 1], [2, 3]]                           # moving right/left, and back again
    root = tmp_path / "cache"                                                # written before dataset.json existed
    write(root / "classes.txt", "".join(c + "\n" for c in CLASSES))
    write(root / "train.txt", "videos/train_0000.mp4 0\n")
    write(root / "val.txt", "videos/val_0000.mp4 0\n")
    assert demo_dataset(str(root)) == str(root) and not os.path.exists(root / "videos")
    assert read_dataset_info(str(root))["flip_pairs"] == [[0, 1], [2, 3]]


# ---------------------------------------------------------------------------------------------- raw download hint
@pytest.mark.parametrize("kind, files", [
    ("ucf101", ["UCF-101/YoYo/v_YoYo_g01_c01.avi", "ucfTrainTestlist/classInd.txt"]),
    ("ssv1", ["something-something-v1-labels.csv"]),
    ("ssv2", ["labels/something-something-v2-labels.json", "20bn-something-something-v2/1.webm"]),
    ("kinetics400", ["kinetics400/train.csv", "kinetics400/validate.csv"]),
    ("hmdb51", ["testTrainMulti_7030_splits/brush_hair_test_split1.txt", "brush_hair/a.avi"]),
    ("diving48", ["Diving48_vocab.json", "rgb/v1.mp4"]),
    ("charades", ["Charades/Charades_v1_classes.txt", "Charades_v1_480/AAA.mp4"]),
])
def test_raw_dataset_hint(tmp_path, kind, files):
    for rel in files:
        write(tmp_path / "raw" / rel, "label,youtube_id,time_start,time_end,split\n" if rel.endswith(".csv") else "")
    root = str(tmp_path / "raw")
    assert raw_dataset_hint(root) == (f"{root} looks like the raw {kind} download: run "
                                      f"`python -m common.prepare {kind} {root} OUT` first and pass OUT as --data")


def test_raw_dataset_hint_is_none_for_other_folders(tmp_path):
    write(tmp_path / "prepared/classes.txt", "a\n")
    write(tmp_path / "prepared/train.txt", "v.mp4 0\n")
    write(tmp_path / "other/annotations/train.csv", "path,label\n")           # a train.csv of something else
    for root in ("prepared", "other", "missing"):
        assert raw_dataset_hint(str(tmp_path / root)) is None
